"""A content-addressable memory's landscape read against its memories."""

import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from ..._models.cam import ContentAddressableMemory
from ..._recall import nearest_memory
from ..._validation import as_number, as_patterns, check_instance
from .kinds import NON_HYPERBOLIC, SLOW_POINT, UNSTABLE_FOCUS, UNSTABLE_NODE
from .results import Landscape, UnstableManifolds


def memory_landscape(
    cam: ContentAddressableMemory,
    memories: ArrayLike,
    landscape: Landscape,
    *,
    manifolds: UnstableManifolds | None = None,
    tol: float = 0.05,
) -> dict:
    r"""The landscape of a content-addressable memory's slave read against its
    memories: which memories are attractors, how many attractors are spurious (no
    memory within `tol` on every visible unit, as [`neurodyn.nearest_memory`][]),
    the saddles by their number of unstable directions, and, given the saddles'
    `manifolds` ([`neurodyn.unstable_manifolds`][]), the memories each saddle's two
    unstable branches lead to: the pairs of basins whose boundary (the saddle's
    stable manifold) a slave trajectory crosses when it jumps between them.

    **Returns:** a dict of plain numbers and lists (JSON-ready):
    `memory_of_point` (the memory at each point of `landscape`, -1 for none),
    `memory_is_attractor` (one bool per memory), `memories_stored`, `attractors`,
    `spurious_attractors`, `saddles`, `saddles_by_unstable_directions` (`{k:
    count}`), `unstable`, `non_hyperbolic`, `slow_points` and, with `manifolds`,
    `saddle_connections`: per branch pair of each saddle with one unstable
    direction, the memories (or -1: a spurious attractor or no memory) reached.
    """
    check_instance(
        "cam", cam, ContentAddressableMemory, "a `nd.ContentAddressableMemory`"
    )
    check_instance(
        "landscape", landscape, Landscape, "a `nd.Landscape` from `find_fixed_points`"
    )
    memories = jnp.atleast_2d(as_patterns("memories", memories, cam.n_units))
    tol = as_number("tol", tol)

    def nearest(x):
        x = np.asarray(x).reshape(-1, cam.n_units)
        if x.shape[0] == 0:
            return np.zeros(0, int)
        return np.asarray(nearest_memory(cam, jnp.asarray(x), memories, tol=tol)[0])

    memory = nearest(landscape.x)
    attractors = landscape.attractors
    stored = [bool(np.any(attractors & (memory == a))) for a in range(len(memories))]
    saddles = landscape.saddles
    counts = np.asarray(landscape.n_unstable)[saddles]
    summary = {
        "memory_of_point": [int(a) for a in memory],
        "memory_is_attractor": stored,
        "memories_stored": int(sum(stored)),
        "attractors": int(np.sum(attractors)),
        "spurious_attractors": int(np.sum(attractors & (memory < 0))),
        "saddles": int(np.sum(saddles)),
        "saddles_by_unstable_directions": {
            int(k): int(np.sum(counts == k)) for k in np.unique(counts)
        },
        "unstable": int(np.sum(landscape.where(UNSTABLE_NODE, UNSTABLE_FOCUS))),
        "non_hyperbolic": int(np.sum(landscape.where(NON_HYPERBOLIC))),
        "slow_points": int(np.sum(landscape.where(SLOW_POINT))),
    }
    if manifolds is not None:
        check_instance(
            "manifolds",
            manifolds,
            UnstableManifolds,
            "`nd.UnstableManifolds` from `nd.unstable_manifolds`",
        )
        ends = nearest(np.asarray(manifolds.x)[:, -1])
        saddle = np.asarray(manifolds.saddle)
        one = np.flatnonzero(np.asarray(landscape.n_unstable) == 1)
        summary["saddle_connections"] = [
            sorted(int(m) for m in ends[saddle == s]) for s in one if saddles[s]
        ]
    return summary
