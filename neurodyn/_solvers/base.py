r"""What every steady-state solver shares: the settled test, the outcome and the
budget.

A steady-state solver finds $y$ with $f(y) = 0$ for a vector field
$dy/dt = f(y)$: the forward dynamics $\tau\,dx/dt = -x + F(x)$ or the adjoint
dynamics $\tau\,dz/dt = -z + (\partial F/\partial x)^T z + J$. Whatever the
strategy, the state counts as settled when

$$\|f(y)\| < \mathrm{atol} + \mathrm{rtol}\,\max(\|y\|, s)$$

(RMS norms; $s$ is the size of the forcing of a linear system such as the adjoint,
whose rounding error is relative to $J$, not to $z$).
"""

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Real

from .._results import RESULTS


if TYPE_CHECKING:
    from .ode import ODERelaxation

# The defaults of every relaxation, defined here only (`Relaxation`'s defaults; the
# analyses that continue fixed points and integrate manifolds, stability and
# landscape, use the tighter pair). No other module writes a tolerance or a step
# limit: they name one of these.
RTOL = 1e-6
ATOL = 1e-8
MAX_STEPS = 65_536
ANALYSIS_RTOL = 1e-8
ANALYSIS_ATOL = 1e-10
# Steps of the analog learning system's integration (`nd.analog_learning`): one run
# spans many relaxation times.
ANALOG_MAX_STEPS = 1_000_000
# Adam steps per start of the fixed-point search (`nd.find_fixed_points`).
SEARCH_STEPS = 1000
# GMRES iterations per Newton step (`nd.NewtonKrylov`).
KRYLOV_MAX_STEPS = 256
# The relative tolerance and the most products of the conjugate-gradient solves of
# the implicit slow integrator, and the loosest accuracy its initial layer needs
# (`nd.SlowManifold`).
SLOW_KRYLOV_RTOL = 1e-3
SLOW_MAX_KRYLOV = 40
SLOW_LAYER_RTOL = 1e-3

# A state this many times larger than where it started has run away.
_DIVERGENCE_FACTOR = 1e8

# `field(y)`: the vector field dy/dt of one pattern.
Field = Callable[[Float[Array, " n"]], Float[Array, " n"]]


class Outcome(eqx.Module):
    """Where a steady-state solve ended (for one pattern; a leading pattern axis
    under `vmap`).

    - `y`: the final state.
    - `result`: a [`neurodyn.RESULTS`][].
    - `t`: the (pseudo-)time reached: the ODE time, or for an iteration the number
        of iterations times its step $a\\tau$ (each iteration starts as an Euler
        step of that size).
    - `num_steps`: solver steps or iterations (field evaluations for iterations).
    """

    y: Float[Array, "*p n"]
    result: RESULTS
    t: Real[Array, "*p"]
    num_steps: Int[Array, "*p"]


def rms(y: Array) -> Array:
    return jnp.sqrt(jnp.mean(y**2, axis=-1))


class Relaxation(eqx.Module):
    r"""How steady states are found: the solver, its settled test and its budget.

    Every public function that relaxes takes one, as `relaxation=`, and uses it for
    every relaxation it does (forward and adjoint, learning, analysis): e.g.
    `nd.relax(model, I, relaxation=nd.Relaxation(nd.Anderson(), rtol=1e-8))`.
    The default, `None`, means `nd.Relaxation()` (docs/settings.md).
    """

    solver: "AbstractSteadyStateSolver"
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    t_max: float | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    attractors_only: bool = eqx.field(static=True)

    def __init__(
        self,
        solver: "AbstractSteadyStateSolver | diffrax.AbstractSolver | None" = None,
        *,
        rtol: float = RTOL,
        atol: float = ATOL,
        t_max: float | None = None,
        max_steps: int = MAX_STEPS,
        attractors_only: bool = True,
    ):
        from .._validation import check_relaxation_options
        from .fallback import default_solver
        from .ode import ODERelaxation

        if solver is None:
            solver = default_solver()
        elif isinstance(solver, diffrax.AbstractSolver):
            solver = ODERelaxation(solver)
        elif not isinstance(solver, AbstractSteadyStateSolver):
            raise ValueError(
                "`solver` must be a steady-state solver (`nd.Anderson()`, "
                "`nd.FixedPointIteration()`, `nd.NewtonKrylov()`, "
                "`nd.ODERelaxation()`, `nd.Fallback(...)`) or a diffrax solver such "
                f"as `diffrax.Tsit5()`, got {solver!r}."
            )
        if not isinstance(attractors_only, bool):
            raise ValueError(
                f"`attractors_only` must be True or False, got {attractors_only!r}."
            )
        check_relaxation_options(rtol, atol, t_max, max_steps)
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.t_max = t_max
        self.max_steps = max_steps
        self.attractors_only = attractors_only

    def __check_init__(self):
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

    def settled(
        self, f: Float[Array, "*p n"], y: Float[Array, "*p n"], scale
    ) -> Bool[Array, "*p"]:
        """The steady-state test (module docstring)."""
        return rms(f) < self.atol + self.rtol * jnp.maximum(rms(y), scale)

    def solve(
        self,
        field: Field,
        y0: Float[Array, " n"],
        tau: float,
        scale: Real[Array, ""] | float = 0.0,
    ) -> Outcome:
        """Relax `dy/dt = field(y)` from `y0`, one pattern; a batch is a `jax.vmap`
        over this, at the caller's boundary."""

        def typed(y):  # the field sees and returns the state's dtype, whatever a
            return field(y.astype(y0.dtype)).astype(y.dtype)  # solver promotes to

        scale = jnp.asarray(scale, y0.dtype)
        return self.solver.solve(self, typed, y0, tau, scale)

    def classify(
        self,
        settled: Bool[Array, ""],
        y: Float[Array, " n"],
        y0: Float[Array, " n"],
    ) -> RESULTS:
        """`successful` if settled, else `diverged` if the state ran away (non-finite
        or $10^8$ times its start), else `not_converged`."""
        return RESULTS.where(
            settled,
            RESULTS.successful,
            RESULTS.where(runaway(y, y0), RESULTS.diverged, RESULTS.not_converged),
        )


def runaway(y: Float[Array, " n"], y0: Float[Array, " n"]) -> Bool[Array, ""]:
    """Non-finite, or $10^8$ times larger than where it started."""
    bound = _DIVERGENCE_FACTOR * (1 + jnp.max(jnp.abs(y0)))
    return ~jnp.all(jnp.isfinite(y)) | (jnp.max(jnp.abs(y)) > bound)


class AbstractSteadyStateSolver(eqx.Module):
    """How a steady state $f(y) = 0$ of $dy/dt = f(y)$ is found.

    Solvers hold only their own method's settings; tolerances and budget come in a
    `Relaxation`, so every strategy stops on the same test and reports the same
    way: a strategy that settles ends with the stability certificate
    (`neurodyn._solvers.certificate.certify`). A strategy relaxes one pattern; a
    batch is a `jax.vmap` over it (a fallback still decides for the whole batch).
    """

    @abc.abstractmethod
    def solve(
        self,
        relaxation: Relaxation,
        field: Field,
        y0: Float[Array, " n"],
        tau: float,
        scale: Real[Array, ""],
    ) -> Outcome:
        """Relax one pattern."""

    @abc.abstractmethod
    def ode_relaxation(self) -> "ODERelaxation | None":
        """The ODE integration that [`neurodyn.UnrolledBPTT`][] differentiates
        through when this strategy relaxes: the solver itself if it integrates the
        dynamics, None if it iterates."""


Relaxation.__init__.__doc__ = r"""**Arguments:**

- `solver`: how the steady state is found: [`neurodyn.Anderson`][],
    [`neurodyn.FixedPointIteration`][], [`neurodyn.NewtonKrylov`][],
    [`neurodyn.ODERelaxation`][] (the dynamics themselves), or a
    [`neurodyn.Fallback`][] chain of them; a diffrax solver such as
    `diffrax.Kvaerno5()` means the ODE relaxation with it. Default (None)
    `Fallback(FixedPointIteration(patience=5), Anderson(), ODERelaxation())`: fast,
    and safe wherever the fixed point is stable (docs/solvers.md says when to pick
    which).
- `rtol`, `atol`: the settled test $\|F(x) - x\| < \mathrm{atol} +
    \mathrm{rtol}\,\|x\|$ (RMS norms, divided by $\tau$), the same for every
    solver; the ODE's step-size controller runs at a tenth of them. Defaults
    $10^{-6}$ and $10^{-8}$.
- `t_max`: give up at this (pseudo-)time; default $1000\,\tau$.
- `max_steps`: give up after this many solver steps or iterations; default 65 536.
- `attractors_only`: a settled state counts only if the dynamics hold it: the
    stability certificate (a few Arnoldi steps on $(-1 + \partial F/\partial
    x)/\tau$ from a random probe, docs/solvers.md) turns an unstable fixed point
    into `RESULTS.unstable`. False accepts unstable fixed points, for continuation
    or stability analysis (e.g. with `nd.NewtonKrylov()`). The adjoint of a stable
    fixed point is a linear system with one, stable, fixed point and skips the
    check.
"""
