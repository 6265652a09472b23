r"""The attractor landscape: every fixed and slow point of a network, classified by
its linear stability (Sussillo & Barak's method, for the continuous-time networks
$\tau\,dx/dt = -x + F(x)$ of every model).

Fixed points are the zeros of the speed

$$q(x) = \tfrac12\,\|F(x) - x\|^2,$$

a sum of squares whose global minima ($q = 0$) are the fixed points of every
stability (attractors, saddles, repellers) and whose other local minima are *slow
points*, where the flow nearly stops. From many starts, $q$ is minimised by Adam
(optax, a learning rate decaying a hundredfold; only a vector-Jacobian product of
the drive per step), all starts batched with `jax.vmap` in one compiled program,
then polished by Newton's method on $F(x) - x = 0$ (the dense Newton of
[`neurodyn.stability_along`][]; optimistix's Levenberg-Marquardt and Newton found
the same points but took two to three times as long to compile, 15-17 s against 6-7
s per model on a busy 2-core CPU, a cost the tests pay for every model). The results
are deduplicated within a tolerance and each point is classified from the
eigenvalues $\lambda$ of the linearisation $L = (-1 + \partial F/\partial x)/\tau$
(the matrix of [`neurodyn.spectrum`][]): with $k$ the number of eigenvalues with
$\mathrm{Re}\,\lambda > 0$, a *stable* point has $k = 0$, a *saddle* $0 < k < N$, an
*unstable* point $k = N$; a node or a focus by whether the leading eigenvalue (the
slowest approach, or the fastest escape) is real or complex. A saddle's unstable
directions span the eigenvectors of its $k$ unstable eigenvalues.
"""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Complex, Float, Int, PyTree, Real

from .._models.base import AbstractNetwork
from .._models.cam import ContentAddressableMemory
from .._recall import nearest_memory
from .._solvers.base import ANALYSIS_ATOL, ANALYSIS_RTOL, MAX_STEPS, SEARCH_STEPS
from .._trajectory import _integrate
from .._validation import (
    as_count,
    as_float_array,
    as_number,
    as_patterns,
    check_finite,
    check_instance,
    check_network,
)
from .spectra import jacobian
from .stability import _newton, _stacked


STABLE_NODE = "stable node"
STABLE_FOCUS = "stable focus"
SADDLE = "saddle"
UNSTABLE_NODE = "unstable node"
UNSTABLE_FOCUS = "unstable focus"
NON_HYPERBOLIC = "non-hyperbolic"
SLOW_POINT = "slow point"
# A local minimum of q counts as a slow point when |grad q| <= this * |F(x) - x|.
SLOW_GRADIENT = 1e-2
# Slow points lie in flat valleys of q, located less sharply than fixed points:
# two merge within this many times `dedup_tol`.
SLOW_MERGE = 100.0
KINDS = (
    STABLE_NODE,
    STABLE_FOCUS,
    SADDLE,
    UNSTABLE_NODE,
    UNSTABLE_FOCUS,
    NON_HYPERBOLIC,
    SLOW_POINT,
)


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


def _speed(model, I, x):
    r = model.drive(x, I) - x
    return 0.5 * jnp.sum(r**2)


@eqx.filter_jit
def _minimise(model, I, starts, learning_rate, max_steps, polish_steps):
    """Adam on $q$ from every start (a learning rate decaying a hundredfold), a
    Newton polish, and the linearisation at every end point."""
    schedule = optax.exponential_decay(learning_rate, max_steps, 0.01)
    optimiser = optax.adam(schedule)
    speed = lambda x: _speed(model, I, x)  # noqa: E731

    def one(x0):
        def step(carry, _):
            x, state = carry
            updates, state = optimiser.update(jax.grad(speed)(x), state)
            return (optax.apply_updates(x, updates), state), None

        (x, _), _ = jax.lax.scan(step, (x0, optimiser.init(x0)), None, max_steps)
        polished, _ = _newton(model, I, x, polish_steps)
        q, q_polished = speed(x), speed(polished)
        better = jnp.all(jnp.isfinite(polished)) & (q_polished <= q)
        x = jnp.where(better, polished, x)
        return x, speed(x), jax.grad(speed)(x), jacobian(model, x, I)

    return jax.vmap(one)(starts)


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


@dataclasses.dataclass(frozen=True)
class _Options:
    tol: float | None
    slow_tol: float
    dedup_tol: float
    eig_tol: float | None
    learning_rate: float
    max_steps: int
    polish_steps: int


def _check_options(
    tol, slow_tol, dedup_tol, eig_tol, learning_rate, max_steps, polish_steps
):
    if tol is not None:
        as_number("tol", tol)
    as_number("slow_tol", slow_tol)
    as_number("dedup_tol", dedup_tol)
    if eig_tol is not None:
        as_number("eig_tol", eig_tol)
    as_number("learning_rate", learning_rate)
    as_count("max_steps", max_steps)
    as_count("polish_steps", polish_steps)
    return _Options(
        tol, slow_tol, dedup_tol, eig_tol, learning_rate, max_steps, polish_steps
    )


def _source(model, I) -> PyTree:
    """`I` checked: one source $(N,)$, or a structured source such as the master's
    [`neurodyn.Clamped`][] (its arrays finite)."""
    if isinstance(I, eqx.Module):
        for leaf in jax.tree.leaves(I):
            check_finite("I", leaf)
        return I
    I = as_patterns("I", I, model.n_units)
    if I.ndim != 1:
        raise ValueError(
            f"`I` must be one source of shape ({model.n_units},): a landscape belongs "
            f"to one input; got {I.shape}. Call once per pattern."
        )
    return I


def _starts(model, starts) -> Float[Array, "s n"]:
    starts = as_patterns("starts", starts, model.n_units, of="units")
    return jnp.atleast_2d(starts)


def _landscape(model, I, starts, options: _Options) -> Landscape:
    eps = float(jnp.finfo(starts.dtype).eps)
    tol = eps if options.tol is None else options.tol
    x, q, grad, L = _minimise(
        model,
        I,
        starts,
        options.learning_rate,
        options.max_steps,
        options.polish_steps,
    )
    x, q, grad, L = (np.asarray(a) for a in (x, q, grad, L))
    finite = np.all(np.isfinite(x), axis=-1) & np.isfinite(q)
    # A slow point is a local minimum of q: its gradient (J - 1)^T r has all but
    # vanished next to the residual r = F(x) - x itself.
    settled = np.linalg.norm(grad, axis=-1) <= SLOW_GRADIENT * np.sqrt(2 * q)
    keep = finite & ((q <= tol) | (settled & (q <= options.slow_tol)))
    rows, counts = _distinct(x, q, keep, q > tol, options.dedup_tol)
    rows = np.array(rows, dtype=int)
    values, vectors = _sorted_eig(L[rows]) if rows.size else _empty_eig(x.shape[-1])
    eig_tol = eps**0.5 / model.tau if options.eig_tol is None else options.eig_tol
    kinds, n_unstable = _classify(q[rows], values, tol, eig_tol)
    return Landscape(
        jnp.asarray(x[rows].reshape(-1, x.shape[-1])),
        jnp.asarray(q[rows]),
        jnp.asarray(values),
        jnp.asarray(vectors),
        jnp.asarray(n_unstable, dtype=int),
        jnp.asarray(counts),
        tuple(kinds),
    )


def _empty_eig(n):
    return np.zeros((0, n), complex), np.zeros((0, n, n), complex)


def find_fixed_points(
    model: AbstractNetwork,
    I: ArrayLike | PyTree,
    *,
    starts: ArrayLike,
    tol: float | None = None,
    slow_tol: float = 1e-4,
    dedup_tol: float = 1e-4,
    eig_tol: float | None = None,
    learning_rate: float = 1e-2,
    max_steps: int = SEARCH_STEPS,
    polish_steps: int = 20,
) -> Landscape:
    r"""Every fixed point (and slow point) of $\tau\,dx/dt = -x + F(x)$ reached from
    `starts`, with its speed, spectrum, class and unstable directions.

    Minimises $q(x) = \tfrac12\|F(x) - x\|^2$ from each start by Adam, polishes by
    Newton's method on $F(x) - x = 0$ (kept where it lowers $q$), keeps the end
    points with $q \le$ `tol` (fixed points) or a local minimum with $q \le$
    `slow_tol` (slow points), merges those within `dedup_tol` and classifies each
    from the eigenvalues of $L = (-1 + \partial F/\partial x)/\tau$ (module
    docstring). Only `model.drive` is used: every network works.

    **Arguments:**

    - `model`: any network.
    - `I`: its source, one pattern $(N,)$; or a structured source its `drive`
        accepts, such as `cam.training_source(I, T)` for the master of a
        [`neurodyn.ContentAddressableMemory`][].
    - `starts`: $(S, N)$ start states: given, random (e.g. uniform over the range of
        the activation) or visited states with noise ([`neurodyn.starts_near`][]).
        All $S$ run in one compiled, `vmap`-batched solve.

    **Other arguments:**

    - `tol`: a point is fixed when $q \le$ `tol`; default the machine epsilon of the
        dtype ($\|F(x) - x\| \le \sqrt{2\epsilon}$).
    - `slow_tol`: a local minimum of $q$ above `tol` is reported as a slow point up
        to this speed; larger ones are dropped.
    - `dedup_tol`: end points within this distance (max norm) are one point.
    - `eig_tol`: eigenvalues with $|\mathrm{Re}\,\lambda| \le$ `eig_tol` count as
        zero (non-hyperbolic); default $\sqrt\epsilon/\tau$.
    - `learning_rate`: Adam's initial learning rate (it decays a hundredfold over
        the `max_steps` steps).
    - `max_steps`: Adam steps per start (all of them are taken: a fixed cost).
    - `polish_steps`: Newton steps of the polish.

    **Returns:** a [`neurodyn.Landscape`][].
    """
    check_network(model)
    I = _source(model, I)
    starts = _starts(model, starts)
    options = _check_options(
        tol, slow_tol, dedup_tol, eig_tol, learning_rate, max_steps, polish_steps
    )
    return _landscape(model, I, starts, options)


def starts_near(
    states: ArrayLike, count: int, *, noise: float = 0.0, seed: int = 0
) -> Float[Array, "count n"]:
    r"""`count` start states for [`neurodyn.find_fixed_points`][]: visited states
    (rows of `states`, e.g. a trajectory $(K, N)$ or a batch of them $(P, K, N)$)
    drawn uniformly with replacement, plus Gaussian noise of standard deviation
    `noise` (Sussillo & Barak's starts from the data)."""
    states = as_float_array("states", states)
    if states.ndim < 2 or states.shape[-1] == 0 or states.size == 0:
        raise ValueError(
            f"`states` must be visited states of shape (K, N) or (..., K, N), got "
            f"{states.shape}."
        )
    check_finite("states", states)
    count = as_count("count", count)
    noise = as_number("noise", noise, strict=False)
    seed = as_count("seed", seed, minimum=0)
    flat = np.asarray(states).reshape(-1, states.shape[-1])
    rng = np.random.default_rng(seed)
    picked = flat[rng.integers(0, flat.shape[0], size=count)]
    return jnp.asarray(picked + noise * rng.normal(size=picked.shape), states.dtype)


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


@eqx.filter_jit
def _integrate_branches(model, I, x0, ts):
    field = lambda x: model.vector_field(x, I)  # noqa: E731
    return jax.vmap(
        lambda y0: _integrate(
            field, y0, ts, diffrax.Tsit5(), ANALYSIS_RTOL, ANALYSIS_ATOL, MAX_STEPS
        )
    )(x0)


def unstable_manifolds(
    model: AbstractNetwork,
    I: ArrayLike | PyTree,
    landscape: Landscape,
    *,
    eps: float = 1e-3,
    t1: float = 50.0,
    num_times: int = 200,
) -> UnstableManifolds:
    r"""The unstable manifolds of the saddles of `landscape`, integrated by diffrax
    (Tsit5) from $x_s \pm$ `eps` $v$ for every vector $v$ of the saddle's unstable
    basis ([`neurodyn.Landscape.unstable_directions`][]) over $[0,$ `t1`$]$ at
    `num_times` times. Each branch ends on what the saddle's unstable manifold
    leads to, usually an attractor; together they join the attractors that share a
    basin boundary (the saddle's stable manifold)."""
    check_network(model)
    I = _source(model, I)
    if not isinstance(landscape, Landscape):
        raise TypeError(
            "`landscape` must be a `nd.Landscape` from `nd.find_fixed_points`, got "
            f"{type(landscape).__name__}."
        )
    eps = as_number("eps", eps)
    t1 = as_number("t1", t1)
    num_times = as_count("num_times", num_times, minimum=2)
    saddles, starts = [], []
    x = np.asarray(landscape.x)
    for s in np.flatnonzero(landscape.saddles):
        basis = np.asarray(landscape.unstable_directions(int(s)))
        for v in basis.T:
            for sign in (1.0, -1.0):
                saddles.append(int(s))
                starts.append(x[s] + sign * eps * v)
    ts = jnp.linspace(0.0, t1, num_times, dtype=landscape.x.dtype)
    if not starts:
        n = model.n_units
        return UnstableManifolds(
            jnp.zeros(0, int), ts, jnp.zeros((0, num_times, n), ts.dtype)
        )
    branches = _integrate_branches(model, I, jnp.asarray(np.stack(starts)), ts)
    return UnstableManifolds(jnp.asarray(saddles), ts, branches)


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
