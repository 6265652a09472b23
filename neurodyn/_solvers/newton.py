"""Newton's method on the steady-state equation, with a Krylov linear solve."""

import equinox as eqx
import lineax as lx
import optimistix as optx

from .._validation import as_count
from .base import KRYLOV_MAX_STEPS, AbstractSteadyStateSolver, Outcome
from .certificate import certify


class NewtonKrylov(AbstractSteadyStateSolver):
    r"""Newton's method on $f(y) = 0$ (`optimistix.Newton`), each step
    $(\partial f/\partial y)\,\Delta = -f(y)$ solved matrix-free by GMRES
    (`lineax.GMRES`, Jacobian-vector products only).

    Quadratic convergence near the fixed point, whatever its spectrum (stable or
    not: Newton also finds unstable fixed points, which the ODE would leave, and the
    stability certificate then reports `RESULTS.unstable` unless the relaxation has
    `attractors_only=False`), at the price of a Krylov solve per step. From a poor
    start it can wander; the ODE or [`neurodyn.Anderson`][] are the safer first
    choice.

    **Arguments:**

    - `restart`: GMRES restart length.
    - `krylov_max_steps`: GMRES iterations allowed per Newton step.
    """

    restart: int = eqx.field(static=True, default=20)
    krylov_max_steps: int = eqx.field(static=True, default=KRYLOV_MAX_STEPS)

    def __check_init__(self):
        as_count("restart", self.restart)
        as_count("krylov_max_steps", self.krylov_max_steps)

    def ode_relaxation(self) -> None:
        """None: Newton's iterates are not differentiated through."""
        return None

    def solve(self, relaxation, field, y0, tau, scale):
        # Newton's own stopping test (on the step) is set tighter than the settled
        # test, which then decides the outcome like for every other strategy.
        rtol, atol = 0.1 * relaxation.rtol, 0.1 * relaxation.atol
        solver = optx.Newton(
            rtol=rtol,
            atol=atol,
            linear_solver=lx.GMRES(
                rtol=rtol,
                atol=atol,
                restart=self.restart,
                max_steps=self.krylov_max_steps,
            ),
        )
        sol = optx.root_find(
            lambda y, args: field(y),
            solver,
            y0,
            max_steps=relaxation.max_steps,
            throw=False,
        )
        y = sol.value
        result = relaxation.classify(relaxation.settled(field(y), y, scale), y, y0)
        result = certify(relaxation, result, field, y, tau)
        num_steps = sol.stats["num_steps"]
        return Outcome(y, result, num_steps * tau, num_steps)
