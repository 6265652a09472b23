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

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree, Real

from .._results import RESULTS


# The relaxation defaults, defined here only: every public function that relaxes
# takes `rtol`, `atol` and `max_steps` with these defaults; the analyses that
# continue fixed points and integrate manifolds (stability, landscape) use the
# tighter pair.
RTOL = 1e-6
ATOL = 1e-8
MAX_STEPS = 65_536
ANALYSIS_RTOL = 1e-8
ANALYSIS_ATOL = 1e-10

# A state this many times larger than where it started has run away.
_DIVERGENCE_FACTOR = 1e8

# `field(y)`: the vector field dy/dt of one pattern.
Field = Callable[[Float[Array, " n"]], Float[Array, " n"]]
# `make_field(args)`: the field of the pattern with these `args`. Called once per
# pattern before any iteration, so that what does not depend on `y` (e.g. the
# linearisation an adjoint field needs) is computed once.
FieldMaker = Callable[[PyTree], Field]


class Outcome(eqx.Module):
    """Where a steady-state solve ended. Fields carry a leading pattern axis when a
    batch was solved.

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
    """A steady-state solver with its tolerances and budget: what every relaxation
    in neurodyn (forward, adjoint, learning, analysis) is handed.

    - `strategy`: how the steady state is found, e.g. [`neurodyn.Anderson`][].
    - `rtol`, `atol`: the settled test (module docstring).
    - `t_max`: give up at this (pseudo-)time; default $1000\\,\\tau$.
    - `max_steps`: give up after this many steps or iterations.
    - `attractors_only`: a settled state counts only if the dynamics hold it:
        every strategy ends with the stability certificate
        (`neurodyn._solvers.certificate`), which turns an unstable fixed point into
        `RESULTS.unstable`. False finds unstable fixed points on purpose
        (continuation, stability analysis). The adjoint of a stable fixed point is a
        linear system with one, stable, fixed point and skips the check.
    """

    strategy: "AbstractSteadyStateSolver"
    rtol: float = eqx.field(static=True, default=RTOL)
    atol: float = eqx.field(static=True, default=ATOL)
    t_max: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=MAX_STEPS)
    attractors_only: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if not isinstance(self.strategy, AbstractSteadyStateSolver):
            raise ValueError(
                "`strategy` must be a steady-state solver such as `nd.Anderson()` or "
                f"`nd.ODERelaxation()`, got {self.strategy!r}."
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

    def settled(
        self, f: Float[Array, "*p n"], y: Float[Array, "*p n"], scale
    ) -> Bool[Array, "*p"]:
        """The steady-state test (module docstring)."""
        return rms(f) < self.atol + self.rtol * jnp.maximum(rms(y), scale)

    def solve(
        self,
        make_field: FieldMaker,
        y0: Float[Array, "*p n"],
        args: PyTree,
        tau: float,
        scale: Real[Array, "*p"] | float = 0.0,
    ) -> Outcome:
        """Relax `dy/dt = make_field(args)(y)` from `y0`: one pattern `(N,)`, or a
        batch `(P, N)` whose `args` (and `scale`) carry the same leading axis."""
        scale = jnp.broadcast_to(jnp.asarray(scale, y0.dtype), y0.shape[:-1])

        def typed(a):  # the field sees and returns the state's dtype, whatever a
            field = make_field(a)  # solver or the parameters promote to
            return lambda y: field(y.astype(y0.dtype)).astype(y.dtype)

        if y0.ndim == 1:
            return self.strategy.solve(self, typed(args), y0, tau, scale)
        return self.strategy.solve_batch(self, typed, y0, args, tau, scale)

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
    (`neurodyn._solvers.certificate.certify`). A batch is solved under `vmap`
    unless the strategy says otherwise (a fallback decides for the whole batch).
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

    def solve_batch(
        self,
        relaxation: Relaxation,
        make_field: FieldMaker,
        y0: Float[Array, "p n"],
        args: PyTree,
        tau: float,
        scale: Real[Array, " p"],
    ) -> Outcome:
        """Relax a batch of patterns (leading axis of `y0`, `args`, `scale`)."""
        return jax.vmap(
            lambda y, a, s: self.solve(relaxation, make_field(a), y, tau, s)
        )(y0, args, scale)
