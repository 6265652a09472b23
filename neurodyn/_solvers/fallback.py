"""Fast strategies first, robust ones for whatever they leave unsettled."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Bool

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

    Written for one pattern, it decides for the whole batch under `jax.vmap` (the
    batch axis of `nd.relax` and the gradients, or a user's own, e.g. a parameter
    sweep): the rescue runs only when some pattern needs it (a `lax.cond` on
    "every pattern settled", whose predicate stays unbatched), and then for the
    whole batch, patterns that did settle keeping the answer they got. So when
    every pattern settled, the later solvers cost nothing. `num_steps` counts
    every solver's steps.

    The default strategy of neurodyn is
    `Fallback(FixedPointIteration(patience=5), Anderson(), ODERelaxation())`: the
    plain iteration $x \leftarrow F(x)$, the cheapest there is, wherever it
    contracts (it gives up after 5 iterations without progress elsewhere);
    Anderson acceleration, which settles most stable non-contracting networks in
    a few tens of iterations; the ODE, which settles wherever the fixed point is
    stable and otherwise reports the oscillation or divergence. Each one's settled
    patterns pass the stability certificate before they count.

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
        first, *rest = self.solvers
        out = first.solve(relaxation, field, y0, tau, scale)
        for solver in rest:
            out = _rescue(
                out,
                y0,
                lambda start, s=solver: s.solve(relaxation, field, start, tau, scale),
            )
        return out


def default_solver() -> Fallback:
    """`Fallback(FixedPointIteration(patience=5), Anderson(), ODERelaxation())`."""
    return Fallback(FixedPointIteration(patience=5), Anderson(), ODERelaxation())


@custom_vmap
def _settled_everywhere(ok: Bool[Array, ""]) -> Bool[Array, ""]:
    """`ok` for one pattern; under `vmap`, whether every pattern is ok, unbatched, so
    that a `lax.cond` on it stays a branch instead of becoming a select that runs
    both sides."""
    return ok


@_settled_everywhere.def_vmap
def _settled_everywhere_vmap(axis_size, in_batched, ok):
    del axis_size
    (batched,) = in_batched
    # Called again, so that an outer `vmap` (a user's sweep) reduces its axis too.
    return _settled_everywhere(jnp.all(ok) if batched else ok), False


def _rescue(first: Outcome, y0: Array, backup: Callable[[Array], Outcome]) -> Outcome:
    """`first` if it settled, else `backup`'s outcome from `y0`."""
    ok = first.result == RESULTS.successful

    def again():
        # Under `vmap` this runs for the whole batch once any pattern needs it; the
        # patterns that settled restart where they ended (and settle at once) and
        # keep their answer.
        second = backup(jnp.where(ok, first.y, y0))
        return Outcome(
            jnp.where(ok, first.y, second.y),
            select(ok, first.result, second.result),
            jnp.where(ok, first.t, second.t).astype(first.t.dtype),
            first.num_steps
            + jnp.where(ok, 0, second.num_steps).astype(first.num_steps.dtype),
        )

    return jax.lax.cond(_settled_everywhere(ok), lambda: first, again)
