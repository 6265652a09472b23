"""The ODE itself integrated until it settles: the relaxation Pineda describes."""

import diffrax
import equinox as eqx

from .._results import RESULTS
from .._validation import as_number
from .base import AbstractSteadyStateSolver, Outcome
from .certificate import certify


# The step-size controller works this much tighter than the steady-state test. With
# equal tolerances an explicit solver near a stable focus settles on steps at the
# edge of its stability region, where the state hovers with a residual about the
# size of the tolerance and the test may never pass (seen on the adjoint of a
# 2-unit network with eigenvalues -0.15 +- 0.6i).
_CONTROLLER_MARGIN = 0.1


class ODERelaxation(AbstractSteadyStateSolver):
    r"""Integrate $dy/dt = f(y)$ with a diffrax solver until it settles.

    The solve ends at a steady-state event (a `diffrax.Event` on the settled test
    $\|f(y)\| < \mathrm{atol} + \mathrm{rtol}\,\|y\|$), or at `t_max` / `max_steps`,
    in which case the outcome is [`neurodyn.RESULTS`][]`.not_converged` (still
    moving: an oscillation or a slow relaxation) or `.diverged` (non-finite or
    unbounded). With an adaptive solver a PID step-size controller runs at a tenth
    of `rtol`, `atol`, so that the integration error stays below what the
    steady-state test can see; with `dt0` the step is constant (e.g.
    [`neurodyn.RK4`][] with `dt0=0.1`, as in papers that integrate by hand).

    This follows the transient faithfully, so it is safe wherever the fixed point
    is stable, and slow when the relaxation is long or stiff.
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    dt0: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise ValueError(f"`solver` must be a diffrax solver, got {self.solver!r}.")
        if self.dt0 is None and not isinstance(
            self.solver, diffrax.AbstractAdaptiveSolver
        ):
            raise ValueError(
                "`solver` must be an adaptive diffrax solver (one with an error "
                "estimate, for the PID step-size controller), such as "
                f"`diffrax.Tsit5()` or `diffrax.Kvaerno5()`, got {self.solver!r}; "
                "or give a constant step `dt0`."
            )
        if self.dt0 is not None:
            as_number("dt0", self.dt0)

    def ode_relaxation(self) -> "ODERelaxation":
        """This solver: it integrates the dynamics."""
        return self

    def solve(self, relaxation, field, y0, tau, scale):
        def settled(t, y, args, **kwargs):
            del t, args, kwargs
            return relaxation.settled(field(y), y, scale)

        if self.dt0 is None:
            controller = diffrax.PIDController(
                rtol=_CONTROLLER_MARGIN * relaxation.rtol,
                atol=_CONTROLLER_MARGIN * relaxation.atol,
            )
        else:
            controller = diffrax.ConstantStepSize()
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, args: field(y)),
            self.solver,
            t0=0.0,
            t1=relaxation.horizon(tau),
            dt0=self.dt0,
            y0=y0,
            stepsize_controller=controller,
            event=diffrax.Event(settled),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=relaxation.max_steps,
            throw=False,
        )
        y = sol.ys[-1].astype(y0.dtype)  # diffrax may promote to the time dtype
        stopped = (sol.result == diffrax.RESULTS.successful) | (
            sol.result == diffrax.RESULTS.max_steps_reached
        )
        result = relaxation.classify(
            sol.result == diffrax.RESULTS.event_occurred, y, y0
        )
        # A solver failure other than running out of time or steps speaks for itself.
        result = RESULTS.where(
            stopped | (result != RESULTS.not_converged),
            result,
            RESULTS.promote(sol.result),
        )
        result = certify(relaxation, result, field, y, tau)
        return Outcome(y, result, sol.ts[-1], sol.stats["num_steps"])
