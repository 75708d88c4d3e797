"""Distributions: thin classes over ``jax.random`` samplers and ``jax.scipy.stats`` densities."""

from estimators.distributions.base import Distribution
from estimators.distributions.bernoulli import Bernoulli
from estimators.distributions.categorical import Categorical
from estimators.distributions.normal import Normal

__all__ = ["Bernoulli", "Categorical", "Distribution", "Normal"]
