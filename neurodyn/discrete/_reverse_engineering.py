"""The reverse-engineering benchmark of the paper's section 4: a root network makes
the data, a randomly initialised learner of the same type re-estimates it."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._validation import as_count, as_float_array, as_number, check_instance
from ._backward import observed
from ._criteria import L2, AbstractCriterion
from ._network import (
    DiscreteNetwork,
    check_inputs,
    check_stopping,
    check_targets,
    random_network,
    simulate,
)
from ._units import AbstractUnit


class Problem(eqx.Module):
    """A root network, its input, its clean output on unit 0 and the (possibly
    corrupted) targets the learner sees, with the learner's initial network."""

    root: DiscreteNetwork
    learner: DiscreteNetwork
    inputs: Float[Array, "t 1"]
    clean: Float[Array, "t 1"]
    targets: Float[Array, "t 1"]


def reverse_engineering_problem(
    unit: AbstractUnit,
    n_units: int,
    *,
    length: int = 100,
    seed: int = 0,
    noise: float = 0.0,
    outlier_probability: float = 0.0,
    outlier_magnitude: float = 10.0,
    density: float = 1.0,
) -> Problem:
    r"""The paper's benchmark: a root network of `n_units` units of type `unit`,
    weights $\sim\mathcal N(0, (1/N)^2)$, driven by one scalar input
    $i(t) \sim \mathcal N(0, 1)$ for `length` steps; only unit 0 is observed. The
    learner has the same structure and its own random weights. Targets may carry
    additive noise of standard deviation `noise` and, with probability
    `outlier_probability` per sample, outliers of standard deviation
    `outlier_magnitude`, both relative to the standard deviation of the clean output.
    """
    check_instance(
        "unit", unit, AbstractUnit, "a unit type such as `LinearNonLinear()`"
    )
    as_count("n_units", n_units)
    as_count("length", length, minimum=2)
    as_number("noise", noise, strict=False)
    as_number("outlier_magnitude", outlier_magnitude, strict=False)
    if (
        not 0
        <= as_number("outlier_probability", outlier_probability, strict=False)
        <= 1
    ):
        raise ValueError(
            f"`outlier_probability` must be in [0, 1], got {outlier_probability}."
        )
    rng = np.random.default_rng(seed)
    root_seed, learner_seed = rng.integers(2**31, size=2)
    root = random_network(n_units, unit=unit, density=density, seed=int(root_seed))
    learner = random_network(
        n_units, unit=unit, density=density, seed=int(learner_seed)
    )
    inputs = rng.normal(size=(length, 1))
    clean = np.asarray(simulate(root, jnp.asarray(inputs)).x[:, :1])
    scale = float(np.std(clean))
    corrupted = clean + noise * scale * rng.normal(size=clean.shape)
    outliers = rng.random(clean.shape) < outlier_probability
    corrupted = corrupted + np.where(
        outliers, outlier_magnitude * scale * rng.normal(size=clean.shape), 0.0
    )
    return Problem(
        root=root,
        learner=learner,
        inputs=jnp.asarray(inputs),
        clean=jnp.asarray(clean),
        targets=jnp.asarray(corrupted),
    )


def decay_fit(
    history: np.ndarray, *, fraction: float = 0.9
) -> tuple[float | None, float | None]:
    r"""Footnote 9: fit $c(t) = \alpha\,e^{-t/\tau} + \beta$ to a decreasing criterion
    history. $\tau$ by weighted least squares on
    $\log(c(t-1) - c(t)) = k - t/\tau$ with weights $\gamma^{T-t}$, the window
    $\log(1 - r)/\log\gamma$ being half the history for a fraction $r$ = `fraction`;
    then $\beta$ as the weighted mean of $\hat\beta(t) = c(t) - (c(t-1) - c(t)) /
    (e^{1/\tau} - 1)$ over the $t$ with $0 < \hat\beta(t) < \min c$.
    Returns `(tau, beta)`, `None` where the fit is undefined."""
    c = np.asarray(as_float_array("history", history))
    if c.ndim != 1:
        raise ValueError(f"`history` must be one value per iteration, got {c.shape}.")
    if not 0 < as_number("fraction", fraction) < 1:
        raise ValueError(f"`fraction` must be in (0, 1), got {fraction}.")
    c = c[np.isfinite(c)]  # a run may record NaN once it fails
    if c.size < 3:
        return None, None
    t = np.arange(1, c.size)
    drop = c[:-1] - c[1:]
    gamma = (1.0 - fraction) ** (1.0 / max(c.size / 2, 1.0))
    w = gamma ** (c.size - 1 - t)
    ok = drop > 0
    if ok.sum() < 2:
        return None, None
    design = np.stack([np.ones(ok.sum()), t[ok]], axis=1) * np.sqrt(w[ok])[:, None]
    rhs = np.log(drop[ok]) * np.sqrt(w[ok])
    slope = np.linalg.lstsq(design, rhs, rcond=None)[0][1]
    if not slope < 0:
        return None, None
    tau = -1.0 / slope
    beta_hat = c[1:] - drop / np.expm1(1.0 / tau)
    keep = (beta_hat > 0) & (beta_hat < c.min())
    if not keep.any():
        return float(tau), None
    return float(tau), float(np.sum(w[keep] * beta_hat[keep]) / np.sum(w[keep]))


class AdamRun(eqx.Module):
    """The outcome of `bptt_adam`; `history[k]` is the criterion before update
    `k + 1` (NaN past the stop)."""

    network: DiscreteNetwork
    history: Float[Array, " k"]
    iterations: Int[Array, ""]
    value: Float[Array, ""]
    converged: Bool[Array, ""]


def bptt_adam(
    net: DiscreteNetwork,
    inputs: ArrayLike,
    targets: ArrayLike,
    gains: ArrayLike | None = None,
    *,
    criterion: AbstractCriterion = L2(),
    learning_rate: float = 1e-2,
    tolerance: float = 1e-6,
    max_iterations: int = 5000,
) -> AdamRun:
    """The comparison method: backpropagation through time (`jax.grad` through the
    `lax.scan` simulation) with Adam (`optax.adam`), one update per iteration, until
    the criterion is below `tolerance` or after `max_iterations` updates."""
    inputs = check_inputs(net, inputs)
    targets, gains = check_targets(net, inputs, targets, gains)
    check_stopping(criterion, tolerance, max_iterations)
    as_number("learning_rate", learning_rate)
    return _bptt_adam(
        net, inputs, targets, gains, criterion, learning_rate, tolerance, max_iterations
    )


@eqx.filter_jit
def _bptt_adam(
    net, inputs, targets, gains, criterion, learning_rate, tolerance, max_iterations
):
    k = targets.shape[-1]
    optimizer = optax.adam(learning_rate)

    def loss(w):
        n = eqx.tree_at(lambda m: m.weights, net, jnp.where(net.connectivity, w, 0.0))
        outputs = observed(simulate(n, inputs).x, k)
        return criterion.value(outputs, targets, gains)

    def body(state):
        w, opt_state, history, i, _ = state
        value, grad = jax.value_and_grad(loss)(w)
        updates, opt_state = optimizer.update(grad, opt_state, w)
        done = (value < tolerance) | (i >= max_iterations)
        w = jnp.where(done, w, optax.apply_updates(w, updates))
        history = history.at[i].set(value)
        return w, opt_state, history, jnp.where(done, i, i + 1), done

    w0 = net.weights
    history = jnp.full(max_iterations + 1, jnp.nan, inputs.dtype)
    init = (w0, optimizer.init(w0), history, jnp.asarray(0), jnp.asarray(False))
    w, _, history, i, _ = jax.lax.while_loop(lambda s: jnp.invert(s[-1]), body, init)
    value = history[i]
    return AdamRun(
        network=eqx.tree_at(lambda m: m.weights, net, w),
        history=history,
        iterations=i,
        value=value,
        converged=value < tolerance,
    )
