r"""The analog learning system: forward states, adjoint states and weights of every
pattern integrated together as one ODE (Pineda eqs 1, 13, 17)."""

import typing

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, Int, PyTree

from .._dynamics import adjoint_field, forward_field, parameter_cotangent
from .._gradients import RecurrentBackprop, pattern_errors
from .._models.base import AbstractNetwork
from .._relax import as_relaxation, check_converged, initial_state
from .._validation import as_float_array, as_patterns, check_same_batch


class PatternSchedule(eqx.Module):
    r"""Present one pattern at a time: pattern `patterns[s]` during
    $[$`times[s]`$, $`times[s+1]`$)$. At every switch the activity restarts from
    `x0` and the error signal from 0 (Pineda's re-initialisation)."""

    times: Float[Array, " s1"]
    patterns: Int[Array, " s"]

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
    """

    ts: Float[Array, " k"]
    model: PyTree
    loss: Float[Array, " k"]
    instantaneous_loss: Float[Array, " k"]
    x: Float[Array, "k p n"]
    z: Float[Array, "k p n"]
    stats: dict[str, Int[Array, ""]]


def learning_field(t, state, args):
    r"""The coupled vector field of patterns $a$ and parameters $\theta$:

    $$\tau\dot x_a = -x_a + F(x_a),\quad
      \tau\dot z_a = -z_a + (\partial F/\partial x)^T z_a + J_a,\quad
      \dot\theta = \eta \sum_a (\partial F/\partial\theta)^T z_a,$$

    with $J_a = (T_a - x_a)$ on output units. For a first-order network the last is
    $\dot W = \eta \sum_a y_a x_a^T$, $y_a = g'(u_a)\odot z_a$ (eqs 13, 17).
    """
    del t
    x, z, params = state
    static, I, T, eta = args
    model = eqx.combine(params, static)
    J = model.error(x, T)
    I = jax.vmap(model.training_source)(I, T)
    dx = jax.vmap(lambda xa, ia: forward_field(model, xa, ia))(x, I)
    dz = jax.vmap(lambda xa, ia, za, ja: adjoint_field(model, xa, ia, za, ja))(
        x, I, z, J
    )
    velocity = jax.vmap(lambda xa, ia, za: parameter_cotangent(model, xa, ia, za)[0])(
        x, I, z
    )
    dparams = jax.tree.map(
        lambda v: jnp.asarray(eta, v.dtype) * jnp.sum(v, axis=0), velocity
    )
    return dx, dz, dparams


def _fast_field(t, state, args):
    """The relaxation of activity and error signals, weights held: the stiff part."""
    dx, dz, dparams = learning_field(t, state, args)
    return dx, dz, jax.tree.map(jnp.zeros_like, dparams)


def _slow_field(t, state, args):
    """The weight dynamics alone, activity and error signals held: the slow part."""
    dx, dz, dparams = learning_field(t, state, args)
    return jnp.zeros_like(dx), jnp.zeros_like(dz), dparams


def is_imex(solver: diffrax.AbstractSolver) -> bool:
    """Whether `solver` integrates `MultiTerm(explicit_term, implicit_term)`, as
    diffrax's IMEX solvers `KenCarp3`, `KenCarp4`, `KenCarp5` and `Sil3` do."""
    return typing.get_origin(solver.term_structure) is diffrax.MultiTerm


def learning_terms(solver: diffrax.AbstractSolver) -> diffrax.AbstractTerm:
    r"""The analog learning system as diffrax terms for `solver`: one `ODETerm` of
    `learning_field`, or, for an IMEX solver, the weight dynamics as the explicit term
    and the relaxation of $x$, $z$ (time scale $\tau$, stiff when $\eta\tau$ is small)
    as the implicit term."""
    if is_imex(solver):
        return diffrax.MultiTerm(
            diffrax.ODETerm(_slow_field), diffrax.ODETerm(_fast_field)
        )
    return diffrax.ODETerm(learning_field)


# The default solver is implicit below this value of eta * tau * D**2 (D: numbers in
# the ODE state). An explicit step is capped by the fast relaxation, so its steps
# grow like 1 / (eta tau); an implicit one takes a few dozen steps whatever eta, each
# costing a dense D x D Jacobian and its LU. benchmarks/analog_solvers.py put the
# break-even at eta tau ~ 9e-4 for D = 105 and ~ 2.5e-4 for D = 200, both ~ 10 / D**2
# (docs/analog_solvers.md).
_IMPLICIT_BELOW = 10.0


def default_solver(
    eta: float, tau: float, state_size: int, dtype: jnp.dtype, rtol: float, atol: float
) -> diffrax.AbstractAdaptiveSolver:
    r"""The solver `analog_learning` uses when none is given.

    `diffrax.Tsit5()` unless $\eta\,\tau\,D^2 < 10$, with $D$ the size of the ODE
    state ($2PN$ plus the number of parameters); then `diffrax.Kvaerno5()` with
    `optimistix.Chord` (one Jacobian per stage: diffrax's default `VeryChord`
    rejects half its steps here), whose Newton tolerances are `rtol`, `atol` floored
    at $100\,\epsilon$ and $10\,\epsilon$ of `dtype` so that float32 converges.
    """
    if eta * tau * state_size**2 >= _IMPLICIT_BELOW:
        return diffrax.Tsit5()
    eps = float(jnp.finfo(dtype).eps)
    chord = optx.Chord(rtol=max(rtol, 100 * eps), atol=max(atol, 10 * eps))
    return diffrax.Kvaerno5(root_finder=chord)


# The solver statistics an `AnalogRun` reports.
_STATS = ("num_steps", "num_accepted_steps", "num_rejected_steps")


@eqx.filter_jit
def _integrate(params, static, x0, I, T, eta, ts, solver, rtol, atol, max_steps):
    y0 = (x0, jnp.zeros_like(x0), params)
    sol = diffrax.diffeqsolve(
        learning_terms(solver),
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        args=(static, I, T, eta),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=max_steps,
    )
    stats = {name: sol.stats[name] for name in _STATS}
    return sol.ys, stats


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
    solver: diffrax.AbstractSolver | None = None,
    schedule: PatternSchedule | None = None,
    x0: ArrayLike | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 1_000_000,
) -> AnalogRun:
    r"""Integrate the analog learning system (see `learning_field`) as one ODE.

    Activity and error signals relax on the time scale $\tau$ while the weights move
    at rate $\eta$; for $\eta\to 0$ the weights follow the gradient flow
    $d\theta/dt = -\eta\,\partial E_{\text{total}}/\partial\theta$. Small $\eta$
    makes the system stiff: an explicit solver's steps grow like $1/(\eta\tau)$ while
    an implicit one's stay at a few dozen, each costing a dense Jacobian of the whole
    state. The default picks by `default_solver`: Tsit5, or Kvaerno5 when
    $\eta\,\tau\,D^2 < 10$ (measured in `benchmarks/analog_solvers.py`).

    **Arguments:**

    - `model`, `I`, `T`: as for [`neurodyn.train`][]; $(P, N)$ patterns are all
        present at once (the deterministic analogue of eq 19).
    - `eta`: the learning rate $\eta > 0$.
    - `t1`: the end time.

    **Other arguments:**

    - `saveat`: times to save at (default 201 evenly spaced in $[0, t_1]$).
    - `solver`: adaptive diffrax solver; default `default_solver`'s choice. An IMEX
        solver (`diffrax.KenCarp4()`, ...) gets the weight dynamics as its explicit
        term and the relaxation of $x$, $z$ as its implicit term.
    - `schedule`: a [`neurodyn.PatternSchedule`][] presenting one pattern at a time
        (the stochastic analogue, eq 20); the integration restarts at each switch.
    - `x0`: initial activity (default 0.5); `rtol`, `atol`, `max_steps`: solver
        settings.

    **Returns:** an [`neurodyn.AnalogRun`][].
    """
    n = model.n_units
    I = jnp.atleast_2d(as_patterns("I", I, n))
    T = jnp.atleast_2d(as_patterns("T", T, n).astype(I.dtype))
    check_same_batch(I, T)
    for name, value in (("eta", eta), ("t1", t1)):
        if not (jnp.isfinite(value) and value > 0):
            raise ValueError(f"`{name}` must be positive and finite, got {value}.")
    ts = (
        jnp.linspace(0.0, t1, 201)
        if saveat is None
        else as_float_array("saveat", saveat)
    ).astype(I.dtype)
    if ts.ndim != 1 or bool(jnp.any(jnp.diff(ts) <= 0)) or ts[0] < 0 or ts[-1] > t1:
        raise ValueError(f"`saveat` must be increasing times within [0, {t1}].")
    params, static = eqx.partition(model, eqx.is_inexact_array)
    if solver is None:
        state_size = 2 * I.size + sum(leaf.size for leaf in jax.tree.leaves(params))
        tau = float(model.tau)
        solver = default_solver(eta, tau, state_size, I.dtype, rtol, atol)
    if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        raise ValueError(
            "`solver` must be an adaptive diffrax solver, such as `diffrax.Tsit5()`, "
            f"`diffrax.Kvaerno5()` or `diffrax.KenCarp4()`; got {solver!r}."
        )
    relaxation = as_relaxation(None, rtol, atol, None, 65_536)
    start = initial_state(model, I, x0)
    settings = (solver, rtol, atol, max_steps)
    eta = jnp.asarray(eta, I.dtype)  # traced: a new rate does not recompile

    if schedule is None:
        times = jnp.concatenate([jnp.zeros(1, ts.dtype), ts]) if ts[0] > 0 else ts
        (x, z, saved), stats = _integrate(
            params, static, start, I, T, eta, times, *settings
        )
        keep = slice(times.shape[0] - ts.shape[0], None)
        x, z, saved = jax.tree.map(lambda a: a[keep], (x, z, saved))
    else:
        x, z, saved, stats = _scheduled(
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
    return AnalogRun(ts, models, loss, instantaneous, x, z, stats)


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
    xs, zs, saved_params = [], [], []
    stats = {name: jnp.zeros((), int) for name in _STATS}
    for s in range(schedule.patterns.shape[0]):
        t0, t1 = schedule.times[s], schedule.times[s + 1]
        last = s == schedule.patterns.shape[0] - 1
        inside = (ts >= t0) & ((ts <= t1) if last else (ts < t1))
        a = int(schedule.patterns[s])
        seg_ts = jnp.concatenate([t0[None], ts[inside], t1[None]])
        seg_ts = jnp.unique(seg_ts)  # endpoints may coincide with save times
        (x, z, p), seg_stats = _integrate(
            params,
            static,
            start[a : a + 1],
            I[a : a + 1],
            T[a : a + 1],
            eta,
            seg_ts,
            *settings,
        )
        params = jax.tree.map(lambda leaf: leaf[-1], p)
        stats = jax.tree.map(jnp.add, stats, seg_stats)
        hit = jnp.isin(seg_ts, ts[inside])
        fill = jnp.full((int(hit.sum()), *start.shape), jnp.nan, start.dtype)
        xs.append(fill.at[:, a].set(x[hit, 0]))
        zs.append(fill.at[:, a].set(z[hit, 0]))
        saved_params.append(jax.tree.map(lambda leaf: leaf[hit], p))
    return (
        jnp.concatenate(xs),
        jnp.concatenate(zs),
        jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *saved_params),
        stats,
    )
