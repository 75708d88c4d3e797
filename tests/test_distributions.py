"""Distributions: densities against scipy, sampling frequencies, shapes, and where gradients flow."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as scipy_stats

import estimators as est
from tests.stats import FALSE_ALARM, z_threshold


def test_normal_log_prob_is_the_joint_density():
    loc, scale = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.3, 2.5])
    x = np.array([0.1, -0.7, 4.0])
    got = est.Normal(jnp.asarray(loc, jnp.float32), jnp.asarray(scale, jnp.float32)).log_prob(
        jnp.asarray(x, jnp.float32)
    )
    assert got.shape == ()
    assert float(got) == pytest.approx(scipy_stats.norm.logpdf(x, loc, scale).sum(), rel=1e-5)


def test_normal_broadcasts_loc_and_scale_and_promotes_integers():
    dist = est.Normal(jnp.zeros(3), 1)
    assert dist.event_shape == (3,) and dist.scale.shape == (3,)
    assert jnp.issubdtype(est.Normal(0, 1).dtype, jnp.floating)


def test_bernoulli_log_prob_matches_scipy_and_is_finite_for_large_logits():
    logits = np.array([-2.0, 0.0, 3.0])
    for bits in itertools.product([0.0, 1.0], repeat=3):
        got = est.Bernoulli(jnp.asarray(logits, jnp.float32)).log_prob(jnp.asarray(bits, jnp.float32))
        expected = scipy_stats.bernoulli.logpmf(bits, 1 / (1 + np.exp(-logits))).sum()
        assert float(got) == pytest.approx(expected, rel=1e-5)
    extreme = est.Bernoulli(jnp.array([60.0, -60.0])).log_prob(jnp.array([0.0, 1.0]))
    assert float(extreme) == pytest.approx(-120.0, rel=1e-5)


def test_categorical_log_prob_matches_scipy():
    logits = np.array([[0.2, -1.0, 1.5], [0.0, 0.0, 0.0]])
    x = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = sum(scipy_stats.multinomial.logpmf(x[i], 1, probs[i]) for i in range(2))
    got = est.Categorical(jnp.asarray(logits, jnp.float32)).log_prob(jnp.asarray(x, jnp.float32))
    assert float(got) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dist, probs", [
    (est.Bernoulli(jnp.array([-1.0, 0.0, 2.0])), 1 / (1 + np.exp(-np.array([-1.0, 0.0, 2.0])))),
    (est.Categorical(jnp.array([0.5, -0.5, 1.0, 0.0])),
     np.exp([0.5, -0.5, 1.0, 0.0]) / np.exp([0.5, -0.5, 1.0, 0.0]).sum()),
])
def test_sampling_frequencies_match_the_probabilities(dist, probs, key):
    n = 100_000
    samples = np.asarray(jax.vmap(dist.sample)(jax.random.split(key, n)), np.float64)
    assert samples.shape == (n, *dist.event_shape)
    assert set(np.unique(samples)) <= {0.0, 1.0}
    if isinstance(dist, est.Categorical):
        np.testing.assert_array_equal(samples.sum(axis=-1), 1.0)
    z = (samples.mean(axis=0) - probs) / np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(z) < z_threshold(FALSE_ALARM, z.size)), z


def test_normal_sample_moments(key):
    dist = est.Normal(jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0]))
    n = 100_000
    samples = np.asarray(jax.vmap(dist.sample)(jax.random.split(key, n)), np.float64)
    z = (samples.mean(axis=0) - [1.0, -2.0]) / (np.array([0.5, 3.0]) / np.sqrt(n))
    assert np.all(np.abs(z) < z_threshold(FALSE_ALARM, 2)), z


def test_sample_carries_no_gradient_and_rsample_does(key):
    def through(draw, k):
        return jax.grad(lambda loc: jnp.sum(draw(est.Normal(loc, 1.0), k)))(jnp.zeros(2))

    sample_key, rsample_key = jax.random.split(key)
    np.testing.assert_array_equal(through(lambda d, k: d.sample(k), sample_key), 0.0)
    np.testing.assert_array_equal(through(lambda d, k: d.rsample(k), rsample_key), 1.0)


def test_sample_and_rsample_draw_the_same_point(key):
    dist = est.Normal(jnp.array([0.3]), jnp.array([2.0]))
    np.testing.assert_array_equal(dist.sample(jax.random.clone(key)), dist.rsample(key))


@pytest.mark.parametrize("dist", [est.Bernoulli(jnp.zeros(2)), est.Categorical(jnp.zeros(3))])
def test_discrete_distributions_refuse_rsample(dist, key):
    assert dist.discrete and not dist.reparameterizable
    with pytest.raises(ValueError, match=r"has no reparameterized sampler.*score-function"):
        dist.rsample(key)


def test_categorical_needs_a_category_axis():
    with pytest.raises(ValueError, match=r"Categorical needs logits with at least one axis.*Bernoulli"):
        est.Categorical(jnp.float32(0.0))
