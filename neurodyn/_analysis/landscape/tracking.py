"""The fixed points followed along a learning run: matched from snapshot to
snapshot, with their births, deaths and bifurcations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, PyTree

from ..._solvers.base import SEARCH_STEPS
from ..._validation import as_number
from ..stability import _stacked
from .checks import _check_options, _source
from .results import Landscape, LandscapeEvent, LandscapeTrace
from .search import _landscape
from .starts import _starts


def _match(previous: np.ndarray, current: np.ndarray, match_tol: float):
    """Pairs (i, j) of previous and current fixed points, by an optimal assignment
    of the max-norm distances, kept where the distance is at most `match_tol`."""
    from scipy.optimize import linear_sum_assignment

    if previous.size == 0 or current.size == 0:
        return []
    cost = np.max(np.abs(previous[:, None, :] - current[None, :, :]), axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if cost[i, j] <= match_tol]


def _lone_or_pair(index, step, born, ids, x, n_unstable):
    """Events for the points that appeared (`born`) or vanished at one snapshot:
    two whose numbers of unstable directions differ by one and that are each
    other's nearest are a saddle-node pair; the rest are births or deaths."""
    events, left = [], list(range(len(ids)))
    while left:
        a = left.pop(0)
        partners = [
            b for b in left if abs(int(n_unstable[a]) - int(n_unstable[b])) == 1
        ]
        if partners:
            gaps = [np.max(np.abs(x[a] - x[b])) for b in partners]
            b = partners[int(np.argmin(gaps))]
            left.remove(b)
            pair = tuple(sorted((ids[a], ids[b])))
            mean = (x[a] + x[b]) / 2
            events.append(LandscapeEvent(index, step, "saddle-node", born, pair, mean))
        else:
            kind = "birth" if born else "death"
            events.append(LandscapeEvent(index, step, kind, born, (ids[a],), x[a]))
    return events


def _crossing(index, step, track, before: Landscape, i, after: Landscape, j):
    """A change of the number of unstable directions of a followed point: a Hopf
    bifurcation if the eigenvalue that crossed is complex, else a branch point."""
    k0, k1 = int(before.n_unstable[i]), int(after.n_unstable[j])
    if k0 == k1:
        return []
    crossed = np.asarray(after.eigenvalues[j])[min(k0, k1) : max(k0, k1)]
    if crossed.size == 0 or k1 < k0:
        crossed = np.asarray(before.eigenvalues[i])[min(k0, k1) : max(k0, k1)]
    complex_pair = bool(np.any(np.abs(crossed.imag) > 0))
    kind = "Hopf" if complex_pair else "branch point"
    x = np.asarray(after.x[j])
    return [LandscapeEvent(index, step, kind, k1 < k0, (int(track),), x)]


def fixed_points_along(
    source: PyTree,
    I: ArrayLike | PyTree,
    *,
    starts: ArrayLike,
    steps: ArrayLike | None = None,
    match_tol: float = 0.1,
    tol: float | None = None,
    slow_tol: float = 1e-4,
    dedup_tol: float = 1e-4,
    eig_tol: float | None = None,
    learning_rate: float = 1e-2,
    max_steps: int = SEARCH_STEPS,
    polish_steps: int = 20,
) -> LandscapeTrace:
    r"""Follow the fixed points along a learning run: find them at every snapshot
    ([`neurodyn.find_fixed_points`][]), match them between snapshots and report
    births, deaths and bifurcations.

    At snapshot $k$ the starts are `starts` with their first rows replaced by the
    fixed points of snapshot $k-1$ (same shape: one compilation for the whole run),
    so every point that persists is found again. Fixed points of consecutive
    snapshots are matched by an optimal assignment of their distances (max norm, up
    to `match_tol`); a matched point keeps its track id. Two points that vanish at
    the same snapshot with numbers of unstable directions differing by one (an
    attractor and a saddle, or saddles of $k$ and $k+1$ unstable directions)
    collided: a saddle-node (fold) bifurcation; likewise for a pair born together.
    A followed point whose number of unstable directions changes underwent a Hopf
    bifurcation (a complex pair crossed $\mathrm{Re}\,\lambda = 0$) or a branch
    point (a real eigenvalue crossed, as in a pitchfork). Slow points are reported
    per snapshot but not followed. This is the whole-landscape view of
    [`neurodyn.stability_along`][], which follows each pattern's own fixed point.

    **Arguments:**

    - `source`: a [`neurodyn.History`][] with snapshots, a [`neurodyn.AnalogRun`][]
        or a model whose every array has a leading axis $K$ (as for
        [`neurodyn.stability_along`][]).
    - `I`: the source, one pattern $(N,)$ (or a structured source).
    - `starts`: $(S, N)$ start states, used at every snapshot.

    **Other arguments:**

    - `steps`: labels of the $K$ models when `source` is a stacked model.
    - `match_tol`: the largest distance a followed point may move per snapshot.
    - `tol`, `slow_tol`, `dedup_tol`, `eig_tol`, `learning_rate`, `max_steps`,
        `polish_steps`: as for [`neurodyn.find_fixed_points`][].

    **Returns:** a [`neurodyn.LandscapeTrace`][].
    """
    models, steps = _stacked(source, steps)
    first = jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, models)
    I = _source(first, I)
    starts = np.array(_starts(first, starts))
    match_tol = as_number("match_tol", match_tol)
    options = _check_options(
        tol, slow_tol, dedup_tol, eig_tol, learning_rate, max_steps, polish_steps
    )
    landscapes: list[Landscape] = []
    tracks: list[tuple[int, ...]] = []
    events: list[LandscapeEvent] = []
    next_id = 0
    for k in range(len(steps)):
        model = jax.tree.map(lambda a: a[k] if eqx.is_array(a) else a, models)
        these = starts.copy()
        if landscapes:
            carried = np.asarray(landscapes[-1].x)[landscapes[-1].fixed]
            these[: len(carried)] = carried[: len(these)]
        landscape = _landscape(model, I, jnp.asarray(these), options)
        ids = np.full(len(landscape), -1, dtype=int)
        now = np.flatnonzero(landscape.fixed)
        if not landscapes:
            ids[now] = np.arange(now.size)
            next_id = now.size
        else:
            before, step = landscapes[-1], float(steps[k])
            was = np.flatnonzero(before.fixed)
            pairs = _match(
                np.asarray(before.x)[was], np.asarray(landscape.x)[now], match_tol
            )
            for a, b in pairs:
                ids[now[b]] = tracks[-1][int(was[a])]
                events += _crossing(
                    k, step, ids[now[b]], before, was[a], landscape, now[b]
                )
            gone = np.delete(was, [a for a, _ in pairs])
            new = np.delete(now, [b for _, b in pairs])
            ids[new] = np.arange(next_id, next_id + new.size)
            next_id += new.size
            events += _lone_or_pair(
                k,
                step,
                False,
                [tracks[-1][int(i)] for i in gone],
                np.asarray(before.x)[gone],
                np.asarray(before.n_unstable)[gone],
            )
            events += _lone_or_pair(
                k,
                step,
                True,
                [int(t) for t in ids[new]],
                np.asarray(landscape.x)[new],
                np.asarray(landscape.n_unstable)[new],
            )
        landscapes.append(landscape)
        tracks.append(tuple(int(i) for i in ids))
    return LandscapeTrace(
        jnp.asarray(steps), tuple(landscapes), tuple(tracks), tuple(events)
    )
