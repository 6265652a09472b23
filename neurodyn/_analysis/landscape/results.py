"""The landscape's result types: the points found, the points followed along
learning with their events, and the saddles' unstable manifolds."""

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float, Int, Real

from .kinds import KINDS, SADDLE, SLOW_POINT, STABLE_FOCUS, STABLE_NODE


class Landscape(eqx.Module):
    r"""The fixed and slow points found by [`neurodyn.find_fixed_points`][], one row
    per distinct point, fixed points first (by increasing $q$), then slow points.

    - `x`: $(M, N)$ the points.
    - `q`: $(M,)$ the speed $q(x) = \frac12\|F(x) - x\|^2$ there.
    - `eigenvalues`: $(M, N)$ eigenvalues of $L = (-1 + \partial F/\partial x)/\tau$,
        by decreasing real part (the order of [`neurodyn.spectrum`][]).
    - `eigenvectors`: $(M, N, N)$ the matching eigenvectors, as columns.
    - `n_unstable`: $(M,)$ the number $k$ of eigenvalues with $\mathrm{Re}\,\lambda
        > $ `eig_tol`; the first $k$ columns of `eigenvectors` are unstable.
    - `starts`: $(M,)$ how many starts ended at each point.
    - `kind`: one label per point: `"stable node"`, `"stable focus"`, `"saddle"`,
        `"unstable node"`, `"unstable focus"`, `"non-hyperbolic"` (an eigenvalue
        with $|\mathrm{Re}\,\lambda| \le$ `eig_tol`: a bifurcation point or a
        continuum of fixed points) or `"slow point"` ($q$ above `tol`).
    """

    x: Float[Array, "m n"]
    q: Float[Array, " m"]
    eigenvalues: Complex[Array, "m n"]
    eigenvectors: Complex[Array, "m n n"]
    n_unstable: Int[Array, " m"]
    starts: Int[Array, " m"]
    kind: tuple[str, ...] = eqx.field(static=True)

    def __len__(self) -> int:
        return len(self.kind)

    def where(self, *kinds: str) -> np.ndarray:
        """Boolean mask $(M,)$ of the points of the given kinds."""
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"Unknown kinds {sorted(unknown)}; the kinds are {KINDS}.")
        return np.array([k in kinds for k in self.kind], dtype=bool)

    @property
    def attractors(self) -> np.ndarray:
        """Mask of the stable fixed points (nodes and foci)."""
        return self.where(STABLE_NODE, STABLE_FOCUS)

    @property
    def saddles(self) -> np.ndarray:
        """Mask of the saddles."""
        return self.where(SADDLE)

    @property
    def fixed(self) -> np.ndarray:
        """Mask of the fixed points ($q \\le$ `tol`): every kind but slow points."""
        return ~self.where(SLOW_POINT)

    def select(self, mask: ArrayLike) -> "Landscape":
        """The points where the boolean `mask` $(M,)$ is True."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self),):
            raise ValueError(
                f"`mask` must be a boolean array of shape ({len(self)},), got "
                f"{mask.shape}."
            )
        arrays = [np.asarray(a)[mask] for a in self._arrays()]
        kind = tuple(k for k, m in zip(self.kind, mask) if m)
        return Landscape(*(jnp.asarray(a) for a in arrays), kind)

    def _arrays(self):
        return (
            self.x,
            self.q,
            self.eigenvalues,
            self.eigenvectors,
            self.n_unstable,
            self.starts,
        )

    def unstable_directions(self, index: int) -> Float[Array, "n k"]:
        r"""An orthonormal real basis $(N, k)$ of the unstable eigenspace of point
        `index`: the span of the real and imaginary parts of the eigenvectors of its
        $k$ eigenvalues with positive real part (a complex pair spans a plane)."""
        k = int(self.n_unstable[index])
        vectors = np.asarray(self.eigenvectors[index])[:, :k]
        parts = np.concatenate([vectors.real, vectors.imag], axis=1)
        u, s, _ = np.linalg.svd(parts, full_matrices=False)
        return jnp.asarray(u[:, :k] if k else np.zeros((parts.shape[0], 0)))


@dataclasses.dataclass(frozen=True, eq=False)
class LandscapeEvent:
    """A change of the set of fixed points between snapshots $k-1$ and $k$ of a
    learning run.

    - `index`, `step`: the snapshot $k$ where the change is first seen, and its
        update (or time).
    - `kind`: `"saddle-node"` (two fixed points whose numbers of unstable directions
        differ by one collide and vanish, or are born together), `"Hopf"` (a
        followed point's leading complex pair crossed $\\mathrm{Re}\\,\\lambda = 0$),
        `"branch point"` (a real eigenvalue crossed at a followed point, as in a
        pitchfork), `"birth"` or `"death"` (a point appeared or vanished alone).
    - `born`: True for a birth (or a saddle-node creating a pair).
    - `tracks`: the ids of the followed points involved.
    - `x`: where it happened (the points' mean at the snapshot where they existed).
    """

    index: int
    step: float
    kind: str
    born: bool
    tracks: tuple[int, ...]
    x: np.ndarray


class LandscapeTrace(eqx.Module):
    r"""The fixed points followed along a learning run
    ([`neurodyn.fixed_points_along`][]).

    - `steps`: $(K,)$ the snapshots' updates or times.
    - `landscapes`: the [`neurodyn.Landscape`][] of each snapshot.
    - `tracks`: for each snapshot, the id of the followed point of each of its
        fixed points (slow points get $-1$); a point keeps its id from snapshot to
        snapshot while it is matched.
    - `events`: the births, deaths and bifurcations, as
        [`neurodyn.LandscapeEvent`][]s in the order they happen.
    """

    steps: Real[Array, " k"]
    landscapes: tuple[Landscape, ...]
    tracks: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    events: tuple[LandscapeEvent, ...] = eqx.field(static=True)

    def count(self, *kinds: str) -> np.ndarray:
        """The number of points of the given kinds at each snapshot, $(K,)$."""
        return np.array([int(np.sum(s.where(*kinds))) for s in self.landscapes])


class UnstableManifolds(eqx.Module):
    r"""Trajectories leaving saddles along their unstable directions
    ([`neurodyn.unstable_manifolds`][]): one branch per saddle, unstable basis
    direction $v$ and sign, started at $x_s \pm \epsilon v$.

    - `saddle`: $(B,)$ the index of each branch's saddle in the landscape.
    - `ts`: $(T,)$ the save times.
    - `x`: $(B, T, N)$ the branches.
    """

    saddle: Int[Array, " b"]
    ts: Float[Array, " t"]
    x: Float[Array, "b t n"]
