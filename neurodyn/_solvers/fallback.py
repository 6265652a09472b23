"""Fast strategies first, robust ones for whatever they leave unsettled."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._results import RESULTS, select
from .base import AbstractSteadyStateSolver, Outcome
from .iteration import Anderson, FixedPointIteration
from .ode import ODERelaxation


class Fallback(AbstractSteadyStateSolver):
    r"""Try each solver in turn: every pattern the first did not settle (it stalled,
    ran away, ran out of budget or settled on a fixed point that the stability
    certificate found unstable) is relaxed again by the second from the start
    state, and so on. A pattern the last solver leaves unstable stays
    `RESULTS.unstable` (e.g. the ODE from a start on an invariant set that holds an
    unstable fixed point); one that oscillates around it, `not_converged`.

    For a batch each decision is taken once for the whole batch (a `lax.cond`):
    when every pattern settled, the later solvers cost nothing. Patterns that did
    settle keep the answer they got. `num_steps` counts every solver's steps.

    The default strategy of neurodyn is
    `Fallback(FixedPointIteration(patience=5), Anderson(), ODERelaxation())`: the
    plain iteration $x \leftarrow F(x)$, the cheapest there is, wherever it
    contracts (it gives up after 5 iterations without progress elsewhere);
    Anderson acceleration, which settles most stable non-contracting networks in
    a few tens of iterations; the ODE, which settles wherever the fixed point is
    stable and otherwise reports the oscillation or divergence. Each one's settled
    patterns pass the stability certificate before they count.

    !!! note
        Under a user's own `jax.vmap` over calls (e.g. a parameter sweep) the
        conditions are batched and become selects: results stay correct, but every
        solver then runs.

    **Arguments:** the solvers, at least two, in the order to try them.
    """

    solvers: tuple[AbstractSteadyStateSolver, ...]

    def __init__(self, *solvers: AbstractSteadyStateSolver):
        if len(solvers) < 2 or not all(
            isinstance(s, AbstractSteadyStateSolver) for s in solvers
        ):
            raise ValueError(
                "`solvers`: `nd.Fallback(...)` takes two or more steady-state "
                f"solvers, got {solvers!r}."
            )
        self.solvers = solvers

    def ode_relaxation(self) -> ODERelaxation | None:
        """The last solver's: the one that settles what the others leave."""
        return self.solvers[-1].ode_relaxation()

    def solve(self, relaxation, field, y0, tau, scale):
        return self._chain(
            y0, lambda s, start: s.solve(relaxation, field, start, tau, scale)
        )

    def solve_batch(self, relaxation, make_field, y0, args, tau, scale):
        return self._chain(
            y0,
            lambda s, start: s.solve_batch(
                relaxation, make_field, start, args, tau, scale
            ),
        )

    def _chain(
        self,
        y0: Array,
        solve: Callable[[AbstractSteadyStateSolver, Array], Outcome],
    ) -> Outcome:
        """`solve` with the first solver from `y0`, then each next one on the
        patterns still unsettled."""
        first, *rest = self.solvers
        out = solve(first, y0)
        for solver in rest:
            out = _rescue(out, y0, lambda start, s=solver: solve(s, start))
        return out


def default_solver() -> Fallback:
    """`Fallback(FixedPointIteration(patience=5), Anderson(), ODERelaxation())`."""
    return Fallback(FixedPointIteration(patience=5), Anderson(), ODERelaxation())


def _rescue(first: Outcome, y0: Array, backup: Callable[[Array], Outcome]) -> Outcome:
    """`first`, with every unsettled pattern replaced by `backup`'s from `y0`."""
    ok = first.result == RESULTS.successful

    def again():
        # Settled patterns restart where they ended and settle at once.
        second = backup(jnp.where(ok[..., None], first.y, y0))
        return Outcome(
            jnp.where(ok[..., None], first.y, second.y),
            select(ok, first.result, second.result),
            jnp.where(ok, first.t, second.t).astype(first.t.dtype),
            first.num_steps
            + jnp.where(ok, 0, second.num_steps).astype(first.num_steps.dtype),
        )

    return jax.lax.cond(jnp.all(ok), lambda: first, again)
