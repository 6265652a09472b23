r"""Trajectories: the forward and adjoint dynamics sampled at given times."""

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._batch import batched
from ._dynamics import adjoint_field, forward_field
from ._models.base import AbstractNetwork
from ._relax import initial_state
from ._solvers.base import ATOL, MAX_STEPS, RTOL
from ._validation import (
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


def _integrate(field, y0, ts, solver, rtol, atol, max_steps):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: field(y)),
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=max_steps,
    )
    return sol.ys


@eqx.filter_jit
def _forward(model, I, x0, ts, solver, rtol, atol, max_steps):
    return batched(
        lambda i, x: _integrate(
            lambda y: forward_field(model, y, i), x, ts, solver, rtol, atol, max_steps
        ),
        I,
        x0,
    )


def _check_options(model, solver, rtol, atol, max_steps) -> diffrax.AbstractSolver:
    """The network, the diffrax solver (default Tsit5) and its options."""
    check_network(model)
    check_relaxation_options(rtol, atol, None, max_steps)
    as_number("atol", atol)  # from z = 0, a zero atol would stall the step size
    solver = diffrax.Tsit5() if solver is None else solver
    check_instance("solver", solver, diffrax.AbstractSolver, "a diffrax solver")
    return solver


def _times(ts: ArrayLike) -> Float[Array, " k"]:
    ts = as_float_array("ts", ts)
    check_finite("ts", ts)
    if ts.ndim != 1 or ts.shape[0] < 2 or not bool(jnp.all(jnp.diff(ts) > 0)):
        raise ValueError(
            f"`ts` must be an increasing 1-d array of at least two times, got {ts}."
        )
    return ts


def trajectory(
    model: AbstractNetwork,
    I: ArrayLike,
    ts: ArrayLike,
    *,
    x0: ArrayLike | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    max_steps: int = MAX_STEPS,
) -> Float[Array, "*p k n"]:
    r"""The forward activity $x(t)$ of $\tau\, dx/dt = -x + F(x)$ at times `ts`
    (starting at `ts[0]` from `x0`, default 0.5), shape `(K, N)` or `(P, K, N)`."""
    solver = _check_options(model, solver, rtol, atol, max_steps)
    I = as_patterns("I", I, model.n_units)
    ts = _times(ts).astype(I.dtype)
    x0 = initial_state(model, I, as_start(x0, I))
    return _forward(model, I, x0, ts, solver, rtol, atol, max_steps)


@eqx.filter_jit
def _adjoint(model, x, I, J, ts, solver, rtol, atol, max_steps):
    def one(x, i, j):
        field = lambda z: adjoint_field(model, x, i, z, j)  # noqa: E731
        return _integrate(field, jnp.zeros_like(x), ts, solver, rtol, atol, max_steps)

    return batched(one, x, I, J)


def adjoint_trajectory(
    model: AbstractNetwork,
    x: ArrayLike,
    I: ArrayLike,
    T: ArrayLike,
    ts: ArrayLike,
    *,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    max_steps: int = MAX_STEPS,
) -> Float[Array, "*p k n"]:
    r"""The adjoint (backward error) state $z(t)$ of
    $\tau\, dz/dt = -z + (\partial F/\partial x)^T z + J$ at times `ts`, from $z = 0$,
    with $J = (T - x)$ on output units and the linearisation taken at the fixed point
    `x` (e.g. `nd.relax(model, I).x`)."""
    solver = _check_options(model, solver, rtol, atol, max_steps)
    n = model.n_units
    I = as_patterns("I", I, n)
    x = as_patterns("x", x, n).astype(I.dtype)
    T = as_patterns("T", T, n).astype(I.dtype)
    check_same_batch(x, T, names=("x", "T"))
    if I.ndim == 2 and I.shape != x.shape:
        raise ValueError(
            f"`I` must have shape ({n},) or the shape of `x` {x.shape}, got {I.shape}."
        )
    I = jnp.broadcast_to(I, x.shape)
    ts = _times(ts).astype(I.dtype)
    J = model.error(x, T)
    return _adjoint(model, x, I, J, ts, solver, rtol, atol, max_steps)
