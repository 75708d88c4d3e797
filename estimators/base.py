"""The interface every gradient estimator implements, and the pieces they share."""

from __future__ import annotations

import abc
import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np

from estimators.distributions import Distribution
from estimators.objective import Objective, Params
from estimators.pytrees import register_frozen_dataclass

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**kwargs):
        return lambda decorator: decorator


PyTree = Any
T = TypeVar("T")


class Estimate(NamedTuple):
    """What one call of an estimator returns."""

    value: jax.Array  #: the L-sample Monte Carlo estimate of the objective F(θ)
    grads: PyTree  #: the estimate of ∇θ F(θ): a pytree like the parameters
    state: PyTree  #: the estimator's next state; () for stateless estimators


class EstimatorInfo(NamedTuple):
    """What the library, the benchmark and the reports need to know about an estimator."""

    name: str  #: the registry name, used by the CLI, in result files and in plots
    unbiased: bool = True  #: False for estimators biased by design (relaxations); their bias is measured
    stateful: bool = False  #: True where state is carried between calls (use ``grad_with_state``)
    min_num_samples: int = 1  #: the smallest L the estimator is defined for
    #: True where the L-sample estimate is the mean of L per-sample terms, term i a function of sample i's
    #: key alone, each computed at the cost of one sample of the estimate (see
    #: :meth:`GradientEstimator.sample_terms`); False where samples interact (a leave-one-out baseline, a
    #: fitted coefficient), share a computation, or carry state.
    separable: bool = False


class GradientEstimator(abc.ABC):
    """A Monte Carlo estimator of ∇θ E_{x ~ q(x; θ)}[f(θ, x)].

    A concrete estimator is a final :func:`estimator_dataclass`: a frozen dataclass and a pytree whose
    continuous options (a temperature, a scale, a decay) are leaves and whose structural options (a
    number of draws, a flag) are static, so one compiled program serves every value of a continuous
    option, and a traced temperature can be annealed inside ``jit`` or ``lax.scan``.  It states its
    :attr:`info`, implements :meth:`estimate`, and, where they differ from the defaults,
    :meth:`supports`, :meth:`cost_evaluations` and :meth:`init`.  Users call it through
    :func:`estimators.grad`, which validates the inputs first.
    """

    @property
    @abc.abstractmethod
    def info(self) -> EstimatorInfo:
        """The estimator's name and properties."""

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def unbiased(self) -> bool:
        return self.info.unbiased

    @property
    def stateful(self) -> bool:
        return self.info.stateful

    @property
    def min_num_samples(self) -> int:
        return self.info.min_num_samples

    def supports(self, dist: Distribution) -> str | None:
        """None where the estimator can serve ``dist``; otherwise why not, with what would."""
        del dist
        return None

    def applicability(self, dist: Distribution, num_samples: int, batch_ndims: int = 0) -> str | None:
        """None where the estimator can serve ``dist`` with L = ``num_samples`` samples; otherwise why not
        (:meth:`supports`, then the smallest L).  ``batch_ndims``: the leading axes of a sample that are
        independent examples (an estimator whose limit on L is per example reads it)."""
        del batch_ndims
        reason = self.supports(dist)
        if reason is None and num_samples < self.min_num_samples:
            reason = f"needs L >= {self.min_num_samples}"
        return reason

    def cost_evaluations(self, num_samples: int, dist: Distribution, batch_ndims: int = 0) -> int:
        """How many times one estimate evaluates the cost (or its gradient) of a whole sample (one
        evaluation gives every example's cost, with ``batch_ndims`` leading axes of examples)."""
        del dist, batch_ndims
        return num_samples

    def init(self, objective: Objective, params: Params, key: jax.Array) -> PyTree:
        """The initial state for ``objective`` at ``params``; ``key`` for any randomness it needs
        (RELAX's network weights).  Stateless estimators have the empty state ``()``."""
        del objective, params, key
        return ()

    @abc.abstractmethod
    def estimate(
        self, objective: Objective, params: Params, key: jax.Array, num_samples: int, state: PyTree
    ) -> Estimate:
        """One estimate from ``num_samples`` samples drawn with keys ``fold_in(key, i)`` (see
        :func:`sample_keys`)."""

    def sample_terms(self, objective: Objective, params: Params, keys: jax.Array, state: PyTree = ()) -> Estimate:
        """The per-sample terms of a separable estimator (``info.separable``): an :class:`Estimate` whose
        ``value`` has shape (n,) and whose ``grads`` leaves have a leading axis of n, term i computed from
        the sample key ``keys[i]`` alone, such that for every L the estimate
        ``estimate(objective, params, key, L, state)`` is the mean of the first L terms of
        ``sample_terms(objective, params, sample_keys(key, n))`` (to float rounding).  A benchmark can then
        form the estimates of every L of a grid from one set of terms.  The default evaluates the
        one-sample estimate of each key; an estimator with a cost shared by its samples overrides it."""
        if not self.info.separable:
            raise ValueError(f"Estimator {self.name!r} is not separable: its samples interact, so it has no "
                             "per-sample terms; measure each L with its own estimate.")
        one = lambda sample_key: self.estimate(objective, params, sample_key[None], 1, state)
        values, grads, _ = jax.vmap(one)(keys)
        return Estimate(value=values, grads=grads, state=state)

    def has_sample_statistics(self, objective: Objective) -> bool:
        """Whether :meth:`sample_statistics` serves ``objective``: every separable estimator, and a coupled
        one whose estimate is a function of its samples' own statistics (a score function with a
        baseline fitted from the costs)."""
        del objective
        return self.info.separable

    def sample_statistics(self, objective: Objective, params: Params, keys: jax.Array) -> PyTree:
        """Per-sample statistics (a pytree, leading axis n), statistic i from the sample key ``keys[i]``
        alone, from which :meth:`estimate_from_statistics` forms the estimate of the first L samples, for
        every L: ``estimate(objective, params, key, L, state)`` equals
        ``estimate_from_statistics(objective, params, first_L, state)``, ``first_L`` the first L entries of
        ``sample_statistics(objective, params, sample_keys(key, n))``, to float rounding.  The samples may
        interact in that function (a leave-one-out baseline), and the state enters only there, so a
        benchmark forms the estimates of every L of a grid from one set of statistics.  The default: a
        separable estimator's per-sample terms (:meth:`sample_terms`)."""
        return self.sample_terms(objective, params, keys)

    def estimate_from_statistics(self, objective: Objective, params: Params, statistics: PyTree,
                                 state: PyTree = ()) -> Estimate:
        """The estimate of the samples whose :meth:`sample_statistics` are ``statistics`` (their number is
        L); the default is the mean of a separable estimator's per-sample terms."""
        del objective, params
        value, grads = jax.tree_util.tree_map(lambda t: jnp.mean(t, axis=0), (statistics.value, statistics.grads))
        return Estimate(value=value, grads=grads, state=state)


def static(*, default: Any) -> Any:
    """A dataclass field that is static in the pytree: a structural option such as a number of draws."""
    return dataclasses.field(default=default, metadata={"static": True})


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, static))
def estimator_dataclass(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass registered as a pytree: fields declared with :func:`static` are
    part of the tree's structure, the others (continuous options, nested estimators or baselines) are
    its leaves."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = [field for field in dataclasses.fields(cast(Any, cls)) if field.init]
    switches = [f.name for f in fields if f.metadata.get("static") and isinstance(f.default, bool)]
    if switches:
        _check_switches_on_init(cls, switches)
    return register_frozen_dataclass(cls, data_fields=[f.name for f in fields if not f.metadata.get("static")],
                                     meta_fields=[f.name for f in fields if f.metadata.get("static")])


def _check_switches_on_init(cls: type, switches: list[str]) -> None:
    """Make ``cls.__init__`` refuse a non-bool value for an on/off option: ``coupling="no"`` would
    otherwise be read as True."""
    initialize = cast(Any, cls).__init__

    def __init__(self, *args, **kwargs):
        initialize(self, *args, **kwargs)
        for name in switches:
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                owner = getattr(getattr(self, "info", None), "name", cls.__name__)
                raise TypeError(f"{owner}'s option {name} is on or off: pass True or False, got {value!r}.")
            object.__setattr__(self, name, bool(value))

    __init__.__doc__, __init__.__wrapped__ = initialize.__doc__, initialize  # type: ignore[attr-defined]
    cast(Any, cls).__init__ = __init__


def concrete_number(value: Any) -> float | None:
    """``value`` as a float where it is a concrete real number; NaN for a value that is no number (a
    string, a bool); None where it is traced (or a placeholder JAX builds while rebuilding the pytree),
    which cannot be checked."""
    if isinstance(value, (bool, str)):
        return math.nan
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (np.ndarray, np.generic)) or (
        isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer)
    ):
        if np.size(value) == 1 and not jax.dtypes.issubdtype(np.result_type(value), jax.dtypes.prng_key):
            return float(np.asarray(value))
    return None


def check_positive_integer(estimator: Any, option: str) -> None:
    """Check a static integer option of a frozen estimator (a network's ``hidden_units``): a positive int."""
    value = getattr(estimator, option)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        owner = getattr(getattr(estimator, "info", None), "name", type(estimator).__name__)
        raise ValueError(f"{owner} needs a positive integer number of {option}, got {value!r}.")


def check_option(estimator: Any, option: str, is_valid: Callable[[float], bool], requirement: str) -> None:
    """Check a continuous option of a frozen estimator where it is concrete (storing it as a float), so a
    bad value fails at construction; traced values pass through (they are checked nowhere)."""
    value = getattr(estimator, option)
    owner = getattr(getattr(estimator, "info", None), "name", type(estimator).__name__)
    number = concrete_number(value)
    if number is None:
        return
    if math.isnan(number) or not is_valid(number):
        raise ValueError(f"{owner} needs {requirement}, got {value!r}.")
    if isinstance(value, numbers.Real):
        object.__setattr__(estimator, option, number)


def sample_keys(key: jax.Array, num_samples: int) -> jax.Array:
    """One key per sample, ``fold_in(key, i)``: sample i is the same whatever the number of samples.

    Where ``key`` is already a batch of ``num_samples`` keys, those are the sample keys: that is how
    :meth:`GradientEstimator.sample_terms` evaluates the term of one sample key as a one-sample estimate
    (an estimator that used its key otherwise would fail the separability contract test)."""
    if _is_key_batch(key):
        if jnp.shape(key)[0] != num_samples:
            raise ValueError(f"Got a batch of {jnp.shape(key)[0]} sample keys for {num_samples} samples.")
        return key
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(num_samples))


def _is_key_batch(key: jax.Array) -> bool:
    """A one-axis batch of keys: typed keys of shape (n,), or raw uint32 keys of shape (n, 2)."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return jnp.ndim(key) == (1 if typed else 2)


def surrogate_estimate(surrogate, params: Params, state: PyTree = ()) -> Estimate:
    """The estimate whose gradient is that of a surrogate objective.

    ``surrogate(params)`` returns ``(s, value)``: a scalar ``s`` whose gradient is the estimator
    (its value is meaningless) and the Monte Carlo estimate of the objective.  This is the surrogate
    loss of stochastic computation graphs (Schulman et al. 2015): one reverse pass over all samples.
    """
    (_, value), grads = jax.value_and_grad(surrogate, has_aux=True)(params)
    return Estimate(value=value, grads=grads, state=state)
