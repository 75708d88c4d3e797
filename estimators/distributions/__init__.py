"""Distributions: thin classes over ``jax.random`` samplers and ``jax.scipy.stats`` densities."""

from estimators.distributions.base import Distribution
from estimators.distributions.bernoulli import Bernoulli
from estimators.distributions.beta import Beta
from estimators.distributions.categorical import Categorical
from estimators.distributions.cauchy import Cauchy
from estimators.distributions.dirichlet import Dirichlet
from estimators.distributions.exponential import Exponential
from estimators.distributions.gamma import Gamma
from estimators.distributions.gumbel import Gumbel
from estimators.distributions.laplace import Laplace
from estimators.distributions.location_scale import LocationScale
from estimators.distributions.logistic import Logistic
from estimators.distributions.normal import Normal
from estimators.distributions.pareto import Pareto
from estimators.distributions.particles import Particles
from estimators.distributions.rayleigh import Rayleigh
from estimators.distributions.student_t import StudentT

__all__ = [
    "Bernoulli",
    "Beta",
    "Categorical",
    "Cauchy",
    "Dirichlet",
    "Distribution",
    "Exponential",
    "Gamma",
    "Gumbel",
    "Laplace",
    "LocationScale",
    "Logistic",
    "Normal",
    "Pareto",
    "Particles",
    "Rayleigh",
    "StudentT",
]
