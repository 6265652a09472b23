r"""The kinds of points of a landscape, classified from the eigenvalues $\lambda$ of
the linearisation $L = (-1 + \partial F/\partial x)/\tau$ (the matrix of
[`neurodyn.spectrum`][]): with $k$ the number of eigenvalues with
$\mathrm{Re}\,\lambda > 0$, a *stable* point has $k = 0$, a *saddle* $0 < k < N$, an
*unstable* point $k = N$; a node or a focus by whether the leading eigenvalue (the
slowest approach, or the fastest escape) is real or complex. A saddle's unstable
directions span the eigenvectors of its $k$ unstable eigenvalues.
"""

import numpy as np


STABLE_NODE = "stable node"
STABLE_FOCUS = "stable focus"
SADDLE = "saddle"
UNSTABLE_NODE = "unstable node"
UNSTABLE_FOCUS = "unstable focus"
NON_HYPERBOLIC = "non-hyperbolic"
SLOW_POINT = "slow point"
KINDS = (
    STABLE_NODE,
    STABLE_FOCUS,
    SADDLE,
    UNSTABLE_NODE,
    UNSTABLE_FOCUS,
    NON_HYPERBOLIC,
    SLOW_POINT,
)


def _sorted_eig(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors by decreasing real part, ties by decreasing
    imaginary part (the order of `nd.spectrum`)."""
    values, vectors = np.linalg.eig(matrices)
    values, vectors = values.astype(complex), vectors.astype(complex)
    order = np.lexsort((-values.imag, -values.real), axis=-1)
    values = np.take_along_axis(values, order, axis=-1)
    vectors = np.take_along_axis(vectors, order[:, None, :], axis=-1)
    return values, vectors


def _classify(q, values, tol, eig_tol) -> tuple[list[str], np.ndarray]:
    n = values.shape[-1]
    n_unstable = np.sum(values.real > eig_tol, axis=-1)
    kinds = []
    for qm, lam, k in zip(q, values, n_unstable):
        focus = abs(lam[0].imag) > eig_tol
        if qm > tol:
            kinds.append(SLOW_POINT)
        elif np.any(np.abs(lam.real) <= eig_tol):
            kinds.append(NON_HYPERBOLIC)
        elif k == 0:
            kinds.append(STABLE_FOCUS if focus else STABLE_NODE)
        elif k == n:
            kinds.append(UNSTABLE_FOCUS if focus else UNSTABLE_NODE)
        else:
            kinds.append(SADDLE)
    return kinds, n_unstable


def _empty_eig(n):
    return np.zeros((0, n), complex), np.zeros((0, n, n), complex)
