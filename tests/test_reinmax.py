"""ReinMax: its per-sample gradient against the authors' backward formula written in NumPy, and its
expectation, by enumeration, equal to the exact gradient for quadratic costs at τ = 1 (straight-through's
is not)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from estimators.reinmax import reinmax_sample
from experiments import problems
from tests.stats import assert_mean_matches

RNG = np.random.default_rng(20231)
NUM_VARIABLES, NUM_CLASSES = 2, 3
LOGITS = RNG.normal(size=(NUM_VARIABLES, NUM_CLASSES))
QUADRATIC = RNG.normal(size=(NUM_VARIABLES * NUM_CLASSES,) * 2)  # couples the two variables
LINEAR = RNG.normal(size=NUM_VARIABLES * NUM_CLASSES)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cost(x):
    flat = x.reshape(-1)
    return flat @ QUADRATIC @ flat + LINEAR @ flat


def cost_gradient(x):
    return ((QUADRATIC + QUADRATIC.T) @ x.reshape(-1) + LINEAR).reshape(x.shape)


def outcomes():
    """Every pair of one-hot variables with its probability."""
    p = softmax(LOGITS)
    for classes in itertools.product(range(NUM_CLASSES), repeat=NUM_VARIABLES):
        yield np.eye(NUM_CLASSES)[list(classes)], np.prod(p[np.arange(NUM_VARIABLES), classes])


def exact_gradient():
    """∇ℓ Σ_x q(x) f(x) = Σ_x q(x) f(x) (x − p)."""
    p = softmax(LOGITS)
    return sum(weight * cost(x) * (x - p) for x, weight in outcomes())


def numpy_reinmax(x, temperature):
    """The authors' backward: 2 J(½(π_τ + D)) g − ½ J(π₀) g per variable, J(π) = diag(π) − ππᵀ."""
    g = cost_gradient(x)
    jacobian = lambda pi: np.einsum("vk,kj->vkj", pi, np.eye(NUM_CLASSES)) - np.einsum("vk,vj->vkj", pi, pi)
    halfway = 0.5 * (softmax(LOGITS / temperature) + x)
    at = lambda pi: np.einsum("vkj,vj->vk", jacobian(pi), g)
    return 2 * at(halfway) - 0.5 * at(softmax(LOGITS))


def library_gradient(x, temperature, name="reinmax"):
    """The estimate for the sample x (float64 host values)."""
    if name == "reinmax":
        surrogate = lambda logits: reinmax_sample(logits, jnp.asarray(x, jnp.float32), temperature)
    else:
        surrogate = lambda logits: jnp.asarray(x, jnp.float32) + jax.nn.softmax(logits) - jax.lax.stop_gradient(
            jax.nn.softmax(logits))
    quadratic, linear = jnp.asarray(QUADRATIC, jnp.float32), jnp.asarray(LINEAR, jnp.float32)

    def f(logits):
        flat = surrogate(logits).reshape(-1)
        return flat @ quadratic @ flat + linear @ flat

    return np.asarray(jax.grad(f)(jnp.asarray(LOGITS, jnp.float32)), np.float64)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_the_per_sample_gradient_is_the_authors_backward(temperature):
    for x, _ in outcomes():
        np.testing.assert_allclose(library_gradient(x, temperature), numpy_reinmax(x, temperature), rtol=2e-5,
                                   atol=2e-6)


def test_at_temperature_one_its_expectation_on_a_quadratic_is_the_gradient_and_straight_throughs_is_not():
    exact = exact_gradient()
    reinmax = sum(weight * numpy_reinmax(x, 1.0) for x, weight in outcomes())
    np.testing.assert_allclose(reinmax, exact, rtol=1e-12, atol=1e-14)  # float64: to the last digits
    library = sum(weight * library_gradient(x, 1.0) for x, weight in outcomes())
    np.testing.assert_allclose(library, exact, rtol=1e-5, atol=1e-6)  # the library's float32
    straight_through = sum(weight * library_gradient(x, 1.0, "straight_through") for x, weight in outcomes())
    assert np.max(np.abs(straight_through - exact)) > 0.1 * np.max(np.abs(exact))
    # Another temperature loses the identity.
    assert np.max(np.abs(sum(weight * numpy_reinmax(x, 2.0) for x, weight in outcomes()) - exact)) > 1e-3


def test_the_sampled_estimate_is_unbiased_on_the_quadratic_toys_and_returns_the_hard_cost(key):
    """The toys' costs Σ (v·x_d − t)² are quadratic in the latents: at τ = 1 the measured mean is the exact
    gradient, on the categorical toy and on the Bernoulli toy (two classes, logits (0, ℓ))."""
    for name, toy_key in zip(("categorical_toy", "bernoulli_toy"), jax.random.split(key)):
        problem = problems.get(name)
        keys = jax.random.split(toy_key, 50_000)
        value_and_grad = jax.jit(jax.vmap(est.value_and_grad(problem.objective, "reinmax", 4), in_axes=(None, 0)))
        values, grads = value_and_grad(problem.params, keys)
        assert_mean_matches(grads["logits"], problem.exact_grad["logits"], label=name)
        samples = jax.vmap(lambda k: jax.vmap(problem.distribution().sample)(est.sample_keys(k, 4)))(keys[:8])
        hard_costs = jax.vmap(jax.vmap(lambda x: problem.objective.cost(problem.params, x)))(samples)
        np.testing.assert_allclose(values[:8], jnp.mean(hard_costs, axis=1), rtol=1e-6)


def test_a_masked_class_gets_no_gradient_and_no_nan(key):
    logits = jnp.array([0.2, -jnp.inf, 0.5])
    objective = est.Objective(dist=est.Categorical, cost=lambda q, x: (x @ jnp.array([1.0, 2.0, -1.0])) ** 2)
    grads = np.asarray(jax.vmap(est.grad(objective, "reinmax", 3), in_axes=(None, 0))(
        logits, jax.random.split(key, 100)))
    assert np.all(np.isfinite(grads)) and np.all(grads[:, 1] == 0)
