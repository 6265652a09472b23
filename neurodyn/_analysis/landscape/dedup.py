"""Merging the end points of the search that are one point."""

import numpy as np


# Slow points lie in flat valleys of q, located less sharply than fixed points:
# two merge within this many times `dedup_tol`.
SLOW_MERGE = 100.0


def _distinct(x, q, keep, slow, dedup_tol) -> tuple[list[int], np.ndarray]:
    """Representatives of the kept points, the lowest $q$ first, each absorbing the
    later points within `dedup_tol` (max norm; `SLOW_MERGE` times that between slow
    points, which sit in flat valleys of $q$); and how many each absorbed."""
    representatives: list[int] = []
    counts: list[int] = []
    for i in np.argsort(q, kind="stable"):
        if not keep[i]:
            continue
        if representatives:
            gaps = np.max(np.abs(x[representatives] - x[i]), axis=-1)
            reach = np.where(slow[representatives] & slow[i], SLOW_MERGE, 1.0)
            j = int(np.argmin(gaps / reach))
            if gaps[j] <= dedup_tol * reach[j]:
                counts[j] += 1
                continue
        representatives.append(int(i))
        counts.append(1)
    return representatives, np.array(counts, dtype=int)
