r"""Relaxation of a network to a steady state: the ODE integrated until it settles."""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PyTree, Real

from ._dynamics import forward_field
from ._models.base import AbstractNetwork
from ._results import RESULTS
from ._validation import as_patterns


# A state this many times larger than where it started has run away.
_DIVERGENCE_FACTOR = 1e8
# The step-size controller works this much tighter than the steady-state test. With
# equal tolerances an explicit solver near a stable focus settles on steps at the
# edge of its stability region, where the state hovers with a residual about the
# size of the tolerance and the test may never pass (seen on the adjoint of a
# 2-unit network with eigenvalues -0.15 +- 0.6i).
_CONTROLLER_MARGIN = 0.1


class ODERelaxation(eqx.Module):
    r"""Integrate $dy/dt = f(y)$ with an adaptive diffrax solver until it settles.

    The solve ends at a steady-state event (a `diffrax.Event`),
    $\|f(y)\| < \mathrm{atol} + \mathrm{rtol}\,\|y\|$ (RMS norms; for the adjoint
    $\|y\|$ is floored at the size of its source $J$), or at `t_max` /
    `max_steps`, in which case the outcome is [`neurodyn.RESULTS`][]`.not_converged`
    (still moving: an oscillation or a slow relaxation) or `.diverged` (non-finite or
    unbounded). The PID step-size controller runs at a tenth of `rtol`, `atol`, so
    that the integration error stays below what the steady-state test can see. Used
    for the forward dynamics and for the adjoint dynamics alike.
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: float = eqx.field(static=True, default=1e-6)
    atol: float = eqx.field(static=True, default=1e-8)
    t_max: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=65_536)

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(
                "`solver` must be an adaptive diffrax solver (one with an error "
                "estimate, for the PID step-size controller), such as "
                f"`diffrax.Tsit5()` or `diffrax.Kvaerno5()`; got {self.solver!r}."
            )
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"`{name}` must be positive, got {value}.")
        if self.t_max is not None and not self.t_max > 0:
            raise ValueError(f"`t_max` must be positive, got {self.t_max}.")
        if not self.max_steps >= 1:
            raise ValueError(f"`max_steps` must be at least 1, got {self.max_steps}.")

    def horizon(self, tau: float) -> float:
        """`t_max`, defaulting to 1000 time constants."""
        return 1000.0 * tau if self.t_max is None else self.t_max

    def solve(
        self,
        field: Callable[[PyTree], PyTree],
        y0: Float[Array, " n"],
        tau: float,
        scale: Real[Array, ""] | float = 0.0,
    ) -> tuple[Float[Array, " n"], RESULTS, Real[Array, ""], Int[Array, ""]]:
        r"""Relax `dy/dt = field(y)` from `y0`; return `(y, result, t, num_steps)`.

        Settled means $\|f(y)\| < \mathrm{atol} + \mathrm{rtol}\max(\|y\|,
        \mathrm{scale})$ (RMS norms). `scale` is the size of the forcing for a linear
        system such as the adjoint: its rounding error is relative to the source
        $J$, not to $z$, which may be much smaller.
        """

        def settled(t, y, args, **kwargs):
            del t, args, kwargs
            size = jnp.maximum(_rms(y), scale)
            return _rms(field(y)) < self.atol + self.rtol * size

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, args: field(y)),
            self.solver,
            t0=0.0,
            t1=self.horizon(tau),
            dt0=None,
            y0=y0,
            stepsize_controller=diffrax.PIDController(
                rtol=_CONTROLLER_MARGIN * self.rtol, atol=_CONTROLLER_MARGIN * self.atol
            ),
            event=diffrax.Event(settled),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=self.max_steps,
            throw=False,
        )
        y = sol.ys[-1]
        settled = sol.result == diffrax.RESULTS.event_occurred
        bound = _DIVERGENCE_FACTOR * (1 + jnp.max(jnp.abs(y0)))
        runaway = ~jnp.all(jnp.isfinite(y)) | (jnp.max(jnp.abs(y)) > bound)
        stopped = (sol.result == diffrax.RESULTS.successful) | (
            sol.result == diffrax.RESULTS.max_steps_reached
        )
        result = RESULTS.where(
            settled,
            RESULTS.successful,
            RESULTS.where(
                runaway,
                RESULTS.diverged,
                RESULTS.where(
                    stopped, RESULTS.not_converged, RESULTS.promote(sol.result)
                ),
            ),
        )
        return y, result, sol.ts[-1], sol.stats["num_steps"]


def _rms(y: Array) -> Array:
    return jnp.sqrt(jnp.mean(y**2))


def ode_relaxation(
    solver: diffrax.AbstractSolver | None,
    rtol: float,
    atol: float,
    t_max: float | None,
    max_steps: int,
) -> ODERelaxation:
    """The relaxation strategy from the keyword arguments of the public functions."""
    solver = diffrax.Tsit5() if solver is None else solver
    return ODERelaxation(solver, rtol, atol, t_max, max_steps)


class FixedPoint(eqx.Module):
    r"""The outcome of [`neurodyn.relax`][]: a steady state $x^* = F(x^*)$ and how it
    was reached. Fields carry a leading pattern axis when a batch was relaxed.

    - `x`: the final state $x^*$.
    - `result`: a [`neurodyn.RESULTS`][] (`successful` when the dynamics settled).
    - `t`: the time at which the relaxation stopped.
    - `num_steps`: accepted plus rejected solver steps.
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
        """True where the relaxation settled to a steady state."""
        return self.result == RESULTS.successful


def relax_one(
    model: AbstractNetwork,
    I: PyTree,
    x0: Float[Array, " n"],
    relaxation: ODERelaxation,
) -> FixedPoint:
    """Relax one pattern (differentiable by backpropagation through the solver)."""
    x, result, t, num_steps = relaxation.solve(
        lambda x_: forward_field(model, x_, I), x0, model.tau
    )
    residual = jnp.max(jnp.abs(model.drive(x, I) - x))
    return FixedPoint(x, result, t, num_steps, residual)


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
    return batched(lambda i, x: relax_one(model, i, x, relaxation), I, x0)


def relax(
    model: AbstractNetwork,
    I: ArrayLike,
    *,
    x0: ArrayLike | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    t_max: float | None = None,
    max_steps: int = 65_536,
    throw: bool = False,
) -> FixedPoint:
    r"""Relax $\tau\, dx/dt = -x + F(x; \theta, I)$ to its steady state $x^*$.

    **Arguments:**

    - `model`: any network, e.g. [`neurodyn.FirstOrderNetwork`][].
    - `I`: the source, one pattern $(N,)$ or a batch $(P, N)$ (relaxed under `vmap`).

    **Other arguments:**

    - `x0`: start state, $(N,)$ or $(P, N)$; default $0.5$ on every unit (Pineda's
        re-initialisation for every pattern).
    - `solver`: a diffrax adaptive solver, default `diffrax.Tsit5()`; a stiff one such
        as `diffrax.Kvaerno5()` also works.
    - `rtol`, `atol`: tolerances of the PID step-size controller and of the
        steady-state event.
    - `t_max`: give up at this time; default $1000\,\tau$.
    - `max_steps`: give up after this many solver steps.
    - `throw`: raise if any pattern did not settle (under `vmap`, one failure raises
        for the whole batch). By default the failure is returned instead.

    **Returns:**

    A [`neurodyn.FixedPoint`][] with `x`, `converged`, `result`, `t`, `num_steps` and
    `residual`; a relaxation that oscillates, diverges or runs out of time comes back
    with `converged=False`.
    """
    relaxation = ode_relaxation(solver, rtol, atol, t_max, max_steps)
    I = as_patterns("I", I, model.n_units)
    fp = _relax(model, I, initial_state(model, I, x0), relaxation)
    if throw:
        fp = check_converged(fp, fp)
    return fp


def check_converged(fp: FixedPoint, token: PyTree) -> PyTree:
    """`token`, raising the first failed pattern's message at run time if any pattern
    of `fp` did not settle."""
    ok = fp.converged
    first = jnp.argmin(ok.reshape(-1))
    result = jax.tree_util.tree_map(lambda v: v.reshape(-1)[first], fp.result)
    return result.error_if(token, ~jnp.all(ok))
