r"""The analog learning system: forward states, adjoint states and weights of every
pattern integrated together as one ODE (Pineda eqs 1, 13, 17)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PyTree

from .._gradients import RecurrentBackprop, pattern_errors
from .._models.base import AbstractNetwork
from .._relax import check_converged, initial_state
from .._solvers.base import ANALOG_MAX_STEPS, ATOL, RTOL, Relaxation
from .._validation import (
    as_float_array,
    as_number,
    as_patterns,
    as_start,
    check_finite,
    check_instance,
    check_network,
    check_relaxation_options,
    check_same_batch,
)
from .analog_method import AbstractAnalogMethod
from .full_system import STATS, FullSystem, learning_field as learning_field
from .slow_manifold import SlowManifold


class PatternSchedule(eqx.Module):
    r"""Present one pattern at a time: pattern `patterns[s]` during
    $[$`times[s]`$, $`times[s+1]`$)$. At every switch the activity restarts from
    `x0` and the error signal from 0 (Pineda's re-initialisation)."""

    times: Float[Array, " s1"]
    patterns: Int[Array, " s"]

    def __init__(self, times: ArrayLike, patterns: ArrayLike):
        self.times = as_float_array("times", times)
        check_finite("times", self.times)
        self.patterns = jnp.asarray(patterns)
        if not jnp.issubdtype(self.patterns.dtype, jnp.integer):
            raise TypeError(
                "`patterns` must be integer pattern indices, got dtype "
                f"{self.patterns.dtype}."
            )

    def __check_init__(self):
        if self.times.ndim != 1 or self.patterns.shape != (self.times.shape[0] - 1,):
            raise ValueError(
                "`PatternSchedule` needs S+1 switch `times` and S `patterns`, got "
                f"times {self.times.shape} and patterns {self.patterns.shape}."
            )
        if not bool(jnp.all(jnp.diff(self.times) > 0)):
            raise ValueError("`PatternSchedule.times` must increase strictly.")


class AnalogRun(eqx.Module):
    r"""A trajectory of the analog learning system, saved at times `ts`.

    - `ts`: $(K,)$ save times.
    - `model`: the model at each save time; every array has a leading $K$ axis.
    - `loss`: $(K,)$, $E_{\text{total}}$ at the fixed points of the saved weights
      (every pattern relaxed from `x0`): the attractor learning curve.
    - `instantaneous_loss`: $(K,)$, $\tfrac12\sum_a\sum_O (T - x_a(t))^2$ of the
      activity the system actually holds (patterns presented at that time only).
    - `x`, `z`: $(K, P, N)$ activity and error signal (NaN for patterns not
      presented at that time under a schedule).
    - `stats`: the solver's work, summed over the segments of a schedule:
      `num_steps` (accepted plus rejected), `num_accepted_steps`,
      `num_rejected_steps`.
    - `method`: the [`neurodyn.FullSystem`][] or [`neurodyn.SlowManifold`][] that
      ran (the default's choice when none was given).
    - `error_estimate`: that method's estimate of the relative error of the weights:
      the step-size controller's `rtol` for the full system; for the slow manifold
      the relative size of the neglected term of the weight velocity,
      $c^{\text{order}+1}$ with $c = O(\eta\tau)$ the first-order term's size,
      plus the slow ODE's controller `rtol` (its integrator's error).
    """

    ts: Float[Array, " k"]
    model: PyTree
    loss: Float[Array, " k"]
    instantaneous_loss: Float[Array, " k"]
    x: Float[Array, "k p n"]
    z: Float[Array, "k p n"]
    stats: dict[str, Int[Array, ""]]
    method: AbstractAnalogMethod
    error_estimate: Float[Array, ""]


# Below this eps = eta * tau the default integrates along the slow manifold. The
# full system's explicit steps grow like 1 / eps (about 0.5 eta t1 / eps, six fields
# each); the slow ODE's do not, but it is stiff in the loss curvature (88 steps with
# its layer at N = 256, P = 32, where lambda_max(d2E/dW2) = 145) and each of its
# stages costs about 17 fields (the fixed point and five linear solves at a
# hundredth of rtol). Measured: 3x slower than the full system at eps = 1e-3, so
# the break-even is near eps = 3e-4 (docs/analog_solvers.md).
_SLOW_BELOW = 3e-4


def default_method(eta: float, tau: float, t1: float) -> AbstractAnalogMethod:
    r"""The method `analog_learning` uses when none is given: a first-order
    [`neurodyn.SlowManifold`][] when $\epsilon = \eta\tau < 3\times10^{-4}$ and the
    run lasts more than its initial layer, else [`neurodyn.FullSystem`][] with
    `diffrax.Tsit5()` (time scales not separated: learning may leave the
    quasi-static regime, and only the full system follows it)."""
    slow = SlowManifold()
    if eta * tau < _SLOW_BELOW and t1 > 2 * slow.layer * tau:
        return slow
    return FullSystem()


@eqx.filter_jit
def _attractor_loss(models, I, T, x0, relaxation):
    def one(model):
        errors, fp = pattern_errors(model, I, T, x0, RecurrentBackprop(), relaxation)
        return check_converged(fp, jnp.sum(errors))

    return jax.lax.map(one, models)


def analog_learning(
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike,
    *,
    eta: float,
    t1: float,
    saveat: ArrayLike | None = None,
    method: AbstractAnalogMethod | None = None,
    solver: diffrax.AbstractSolver | None = None,
    schedule: PatternSchedule | None = None,
    x0: ArrayLike | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    max_steps: int = ANALOG_MAX_STEPS,
    relaxation: Relaxation | None = None,
) -> AnalogRun:
    r"""Integrate the analog learning system (see [`neurodyn.learning_field`][]).

    Activity and error signals relax on the time scale $\tau$ while the weights move
    at rate $\eta$; for $\epsilon = \eta\tau \to 0$ the weights follow the gradient
    flow $d\theta/dt = -\eta\,\partial E_{\text{total}}/\partial\theta$. Small
    $\epsilon$ makes the full system stiff (an explicit solver's steps grow like
    $t_1/\tau$), so the default picks by $\epsilon$ (`default_method`): along the
    slow manifold with the first-order correction below $\epsilon = 3\times10^{-4}$,
    the full system with `diffrax.Tsit5()` above. `run.method` says which ran.

    **Arguments:**

    - `model`, `I`, `T`: as for [`neurodyn.train`][]; $(P, N)$ patterns are all
        present at once (the deterministic analogue of eq 19).
    - `eta`: the learning rate $\eta > 0$.
    - `t1`: the end time.

    **Other arguments:**

    - `saveat`: times to save at (default 201 evenly spaced in $[0, t_1]$).
    - `method`: [`neurodyn.FullSystem`][] or [`neurodyn.SlowManifold`][]; default
        `default_method`'s choice.
    - `solver`: shorthand for `method=nd.FullSystem(solver)`.
    - `schedule`: a [`neurodyn.PatternSchedule`][] presenting one pattern at a time
        (the stochastic analogue, eq 20); the integration restarts at each switch,
        with any method.
    - `x0`: initial activity (default 0.5); `rtol`, `atol`, `max_steps`: the
        integration's step-size controller and step budget (default one million
        steps: a run spans many relaxation times).
    - `relaxation`: a [`neurodyn.Relaxation`][] for the attractor loss, the fixed
        points of the saved models (`run.loss`); default
        `nd.Relaxation(rtol=rtol, atol=atol)`, the run's tolerances.

    **Returns:** an [`neurodyn.AnalogRun`][].
    """
    check_network(model)
    n = model.n_units
    I = jnp.atleast_2d(as_patterns("I", I, n))
    T = jnp.atleast_2d(as_patterns("T", T, n).astype(I.dtype))
    check_same_batch(I, T)
    eta, t1 = as_number("eta", eta), as_number("t1", t1)
    check_relaxation_options(rtol, atol, None, max_steps)
    if schedule is not None:
        check_instance("schedule", schedule, PatternSchedule, "a `nd.PatternSchedule`")
    ts = (
        jnp.linspace(0.0, t1, 201)
        if saveat is None
        else as_float_array("saveat", saveat)
    ).astype(I.dtype)
    if ts.ndim != 1 or bool(jnp.any(jnp.diff(ts) <= 0)) or ts[0] < 0 or ts[-1] > t1:
        raise ValueError(f"`saveat` must be increasing times within [0, {t1}].")
    method = _as_method(method, solver, eta, float(model.tau), t1)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    if relaxation is None:
        relaxation = Relaxation(rtol=rtol, atol=atol)
    check_instance("relaxation", relaxation, Relaxation, "a `nd.Relaxation(...)`")
    start = initial_state(model, I, as_start(x0, I))
    settings = (method, rtol, atol, max_steps)
    eta = jnp.asarray(eta, I.dtype)  # traced: a new rate does not recompile

    if schedule is None:
        times = jnp.concatenate([jnp.zeros(1, ts.dtype), ts]) if ts[0] > 0 else ts
        segment = method.integrate(
            params, static, start, I, T, eta, times, *settings[1:]
        )
        keep = slice(times.shape[0] - ts.shape[0], None)
        x, z, saved = jax.tree.map(
            lambda a: a[keep], (segment.x, segment.z, segment.params)
        )
        stats, estimate = segment.stats, segment.error_estimate
    else:
        x, z, saved, stats, estimate = _scheduled(
            params, static, start, I, T, eta, ts, schedule, settings
        )

    models = eqx.combine(saved, jax.tree.map(_broadcast(ts.shape[0]), static))
    presented = jnp.isfinite(x)
    instantaneous = 0.5 * jnp.sum(
        jnp.where(
            presented & model.output_units[None, None], T[None] - jnp.nan_to_num(x), 0
        )
        ** 2,
        axis=(1, 2),
    )
    loss = _attractor_loss(models, I, T, start, relaxation)
    return AnalogRun(ts, models, loss, instantaneous, x, z, stats, method, estimate)


def _as_method(method, solver, eta, tau, t1) -> AbstractAnalogMethod:
    if solver is not None:
        if method is not None:
            raise ValueError(
                "Give `method` or `solver`, not both: `solver=s` is shorthand for "
                "`method=nd.FullSystem(s)`."
            )
        return FullSystem(solver)
    if method is None:
        return default_method(eta, tau, t1)
    if not isinstance(method, AbstractAnalogMethod):
        raise TypeError(
            "`method` must be `nd.FullSystem(...)` or `nd.SlowManifold(...)`, got "
            f"{method!r}."
        )
    return method


def _broadcast(k: int):
    def fn(leaf):
        return jnp.broadcast_to(leaf, (k, *leaf.shape)) if eqx.is_array(leaf) else leaf

    return fn


def _scheduled(params, static, start, I, T, eta, ts, schedule, settings):
    """Integrate segment by segment, one pattern per segment."""
    if schedule.times[0] > ts[0] or schedule.times[-1] < ts[-1]:
        raise ValueError("The `schedule` must cover every time in `saveat`.")
    num_patterns = I.shape[0]
    if bool(jnp.any((schedule.patterns < 0) | (schedule.patterns >= num_patterns))):
        raise ValueError(f"`schedule.patterns` must lie in [0, {num_patterns}).")
    method, *tolerances = settings
    xs, zs, saved_params = [], [], []
    stats = {name: jnp.zeros((), int) for name in STATS}
    estimate = jnp.zeros((), start.dtype)
    for s in range(schedule.patterns.shape[0]):
        t0, t1 = schedule.times[s], schedule.times[s + 1]
        last = s == schedule.patterns.shape[0] - 1
        inside = (ts >= t0) & ((ts <= t1) if last else (ts < t1))
        a = int(schedule.patterns[s])
        seg_ts = jnp.concatenate([t0[None], ts[inside], t1[None]])
        seg_ts = jnp.unique(seg_ts)  # endpoints may coincide with save times
        segment = method.integrate(
            params,
            static,
            start[a : a + 1],
            I[a : a + 1],
            T[a : a + 1],
            eta,
            seg_ts,
            *tolerances,
        )
        p = segment.params
        params = jax.tree.map(lambda leaf: leaf[-1], p)
        stats = jax.tree.map(jnp.add, stats, segment.stats)
        estimate = jnp.maximum(estimate, segment.error_estimate)
        hit = jnp.isin(seg_ts, ts[inside])
        fill = jnp.full((int(hit.sum()), *start.shape), jnp.nan, start.dtype)
        xs.append(fill.at[:, a].set(segment.x[hit, 0]))
        zs.append(fill.at[:, a].set(segment.z[hit, 0]))
        saved_params.append(jax.tree.map(lambda leaf: leaf[hit], p))
    return (
        jnp.concatenate(xs),
        jnp.concatenate(zs),
        jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *saved_params),
        stats,
        estimate,
    )
