r"""Relaxation of a network to its steady state $x^* = F(x^*)$, by any steady-state
solver (see `neurodyn._solvers`)."""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PyTree, Real

from ._dynamics import forward_field
from ._models.base import AbstractNetwork
from ._results import RESULTS, error_if_any
from ._solvers.base import ATOL, MAX_STEPS, RTOL, AbstractSteadyStateSolver, Relaxation
from ._solvers.fallback import default_solver
from ._solvers.ode import ODERelaxation
from ._validation import (
    as_patterns,
    as_start,
    check_network,
    check_relaxation_options,
)


def as_relaxation(
    solver: diffrax.AbstractSolver | AbstractSteadyStateSolver | None,
    rtol: float,
    atol: float,
    t_max: float | None,
    max_steps: int,
    attractors_only: bool = True,
) -> Relaxation:
    """The relaxation from the keyword arguments of the public functions: `solver`
    is a steady-state strategy, a diffrax solver (the ODE relaxation with it), or
    None for the default (`neurodyn._solvers.fallback.default_solver`)."""
    if solver is None:
        solver = default_solver()
    elif isinstance(solver, diffrax.AbstractSolver):
        solver = ODERelaxation(solver)
    elif not isinstance(solver, AbstractSteadyStateSolver):
        raise ValueError(
            "`solver` must be a steady-state solver (`nd.Anderson()`, "
            "`nd.FixedPointIteration()`, `nd.NewtonKrylov()`, `nd.ODERelaxation()`, "
            "`nd.Fallback(...)`) or a diffrax solver such as `diffrax.Tsit5()`, got "
            f"{solver!r}."
        )
    if not isinstance(attractors_only, bool):
        raise ValueError(
            f"`attractors_only` must be True or False, got {attractors_only!r}."
        )
    return Relaxation(solver, rtol, atol, t_max, max_steps, attractors_only)


class FixedPoint(eqx.Module):
    r"""The outcome of [`neurodyn.relax`][]: a steady state $x^* = F(x^*)$ and how it
    was reached. Fields carry a leading pattern axis when a batch was relaxed.

    - `x`: the final state $x^*$.
    - `result`: a [`neurodyn.RESULTS`][] (`successful` when the dynamics settled on
        a fixed point they hold; `unstable` when it settled on one they cannot).
    - `t`: the time at which the relaxation stopped (for an iteration, the
        pseudo-time: iterations times its step $a\tau$).
    - `num_steps`: accepted plus rejected ODE solver steps, or iterations (both
        solvers' when a [`neurodyn.Fallback`][] needed more than one).
    - `residual`: $\|F(x) - x\|_\infty$, how far `x` is from solving the fixed-point
      equation (eq 10).
    """

    x: Float[Array, "*p n"]
    result: RESULTS
    t: Real[Array, "*p"]
    num_steps: Int[Array, "*p"]
    residual: Float[Array, "*p"]

    @property
    def converged(self) -> jax.Array:
        """True where the relaxation settled to a steady state that passed the
        stability certificate (or was not asked to)."""
        return self.result == RESULTS.successful


def relax_patterns(
    model: AbstractNetwork,
    I: PyTree,
    x0: Float[Array, "*p n"],
    relaxation: Relaxation,
) -> FixedPoint:
    """Relax one pattern `(N,)` or a batch `(P, N)` (a batch decides a fallback as a
    whole). Differentiable by backpropagation through the solver only for the ODE
    relaxation."""
    out = relaxation.solve(
        lambda i: lambda x_: forward_field(model, x_, i), x0, I, model.tau
    )
    drive = model.drive if x0.ndim == 1 else jax.vmap(model.drive)
    residual = jnp.max(jnp.abs(drive(out.y, I) - out.y), axis=-1)
    return FixedPoint(out.y, out.result, out.t, out.num_steps, residual)


def initial_state(
    model: AbstractNetwork,
    I: Float[Array, "*p n"],
    x0: ArrayLike | None,
) -> Float[Array, "*p n"]:
    """The start state: Pineda's re-initialisation $x_i(t_0) = 0.5$ unless given."""
    if x0 is None:
        return jnp.full(I.shape, 0.5, dtype=I.dtype)
    x0 = as_patterns("x0", x0, model.n_units).astype(I.dtype)
    return jnp.broadcast_to(x0, I.shape)


def batched(fn: Callable, I: Array, *args):
    """Apply a single-pattern function of `(I, x0, ...)` to `(N,)` or `(P, N)`."""
    if I.ndim == 1:
        return fn(I, *args)
    return jax.vmap(fn)(I, *args)


@eqx.filter_jit
def _relax(model, I, x0, relaxation):
    return relax_patterns(model, I, x0, relaxation)


def relax(
    model: AbstractNetwork,
    I: ArrayLike,
    *,
    x0: ArrayLike | None = None,
    solver: AbstractSteadyStateSolver | diffrax.AbstractSolver | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    t_max: float | None = None,
    max_steps: int = MAX_STEPS,
    attractors_only: bool = True,
    throw: bool = False,
) -> FixedPoint:
    r"""Relax $\tau\, dx/dt = -x + F(x; \theta, I)$ to its steady state $x^*$.

    **Arguments:**

    - `model`: any network, e.g. [`neurodyn.FirstOrderNetwork`][].
    - `I`: the source, one pattern $(N,)$ or a batch $(P, N)$.

    **Other arguments:**

    - `x0`: start state, $(N,)$ or $(P, N)$; default $0.5$ on every unit (Pineda's
        re-initialisation for every pattern).
    - `solver`: how the steady state is found: [`neurodyn.Anderson`][],
        [`neurodyn.FixedPointIteration`][], [`neurodyn.NewtonKrylov`][],
        [`neurodyn.ODERelaxation`][] (the dynamics themselves), or a
        [`neurodyn.Fallback`][] chain of them; a diffrax solver such as
        `diffrax.Kvaerno5()` means the ODE relaxation with it. Default
        `Fallback(FixedPointIteration(patience=5), Anderson(), ODERelaxation())`:
        fast, and safe wherever the fixed point is stable (docs/solvers.md says
        when to pick which).
    - `rtol`, `atol`: the settled test $\|F(x) - x\| < \mathrm{atol} +
        \mathrm{rtol}\,\|x\|$ (RMS norms, divided by $\tau$), the same for every
        solver; the ODE's step-size controller runs at a tenth of them. Defaults
        $10^{-6}$ and $10^{-8}$, for every function that relaxes.
    - `t_max`: give up at this (pseudo-)time; default $1000\,\tau$.
    - `max_steps`: give up after this many solver steps or iterations; default
        65 536.
    - `attractors_only`: a settled state counts only if the dynamics hold it: the
        stability certificate (a few Arnoldi steps on $(-1 + \partial F/\partial
        x)/\tau$ from a random probe, docs/solvers.md) turns an unstable fixed
        point into `RESULTS.unstable`. False accepts unstable fixed points, for
        continuation or stability analysis (e.g. with `nd.NewtonKrylov()`).
    - `throw`: raise if any pattern did not settle (under `vmap`, one failure raises
        for the whole batch). By default the failure is returned instead.

    **Returns:**

    A [`neurodyn.FixedPoint`][] with `x`, `converged`, `result`, `t`, `num_steps` and
    `residual`; a relaxation that oscillates, diverges, runs out of time or settles
    on an unstable fixed point comes back with `converged=False`.
    """
    check_network(model)
    check_relaxation_options(rtol, atol, t_max, max_steps)
    relaxation = as_relaxation(solver, rtol, atol, t_max, max_steps, attractors_only)
    I = as_patterns("I", I, model.n_units)
    x0 = as_start(x0, I)
    fp = _relax(model, I, initial_state(model, I, x0), relaxation)
    if throw:
        fp = check_converged(fp, fp)
    return fp


def check_converged(fp: FixedPoint, token: PyTree) -> PyTree:
    """`token`, raising the first failed pattern's message at run time if any pattern
    of `fp` did not settle (its [`neurodyn.RESULTS`][] message: for an unstable
    fixed point, that it is unstable and what to try)."""
    return error_if_any(token, fp.result, ~fp.converged)
