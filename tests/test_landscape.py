"""The attractor landscape (`nd.find_fixed_points` and friends) against networks
whose fixed points are known in closed form, in float64.

Every network below is built around m = 0.8 = tanh(beta m), beta = atanh(0.8)/0.8,
so that its fixed points are exact: a unit whose net input is beta times its own
value sits at 0 or +-m."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import neurodyn as nd
from neurodyn import plot


M = 0.8
BETA = float(np.arctanh(M) / M)
PATTERNS = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, -1.0, -1.0]])  # orthogonal


def uniform_starts(count, n, low=-1.5, high=1.5, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=(count, n))


def matched(found, expected, atol=1e-8):
    """For every expected point, the index of the found point within `atol` of it;
    asserts a one-to-one match (nothing missing, nothing extra or duplicated)."""
    found, expected = np.asarray(found), np.asarray(expected)
    assert found.shape == expected.shape, (found, expected)
    gaps = np.max(np.abs(found[None, :, :] - expected[:, None, :]), axis=-1)
    index = np.argmin(gaps, axis=1)
    assert np.all(gaps[np.arange(len(expected)), index] < atol), gaps
    assert len(set(index.tolist())) == len(expected)
    return index


@pytest.fixture(scope="module")
def hopfield():
    """A symmetric Hopfield network storing the two orthogonal patterns with
    W = beta/4 sum xi xi^T. A fixed point is (u, u, v, v) with u = tanh(beta u) and
    v = tanh(beta v), so u, v in {0, +-m}: the 4 states +-m xi are stable nodes,
    the 4 mixtures with one of u, v zero are saddles with 1 unstable direction,
    the origin a saddle with 2."""
    W = BETA / 4 * PATTERNS.T @ PATTERNS
    net = nd.FirstOrderNetwork(W, activation=nd.tanh)
    I = np.zeros(4)
    return net, I, nd.find_fixed_points(net, I, starts=uniform_starts(200, 4))


def test_two_unit_network_has_its_three_fixed_points():
    """x1 = tanh(w x2), x2 = tanh(w x1) with w = beta: the origin (a saddle, L
    eigenvalues w - 1 and -1 - w, unstable along (1, 1)) and +-(m, m) (stable nodes,
    eigenvalues -1 +- (1 - m^2) w)."""
    net = nd.FirstOrderNetwork(np.array([[0.0, BETA], [BETA, 0.0]]), activation=nd.tanh)
    I = np.zeros(2)
    found = nd.find_fixed_points(net, I, starts=uniform_starts(100, 2))
    expected = np.array([[0.0, 0.0], [M, M], [-M, -M]])
    index = matched(found.x, expected)
    assert [found.kind[i] for i in index] == ["saddle", "stable node", "stable node"]
    assert np.asarray(found.n_unstable)[index].tolist() == [1, 0, 0]
    g = 1 - M**2
    analytic = np.array(
        [
            [BETA - 1, -1 - BETA],
            [g * BETA - 1, -g * BETA - 1],
            [g * BETA - 1, -g * BETA - 1],
        ]
    )
    np.testing.assert_allclose(found.eigenvalues[index], analytic, atol=1e-10)
    np.testing.assert_allclose(
        found.eigenvalues, nd.spectrum(net, found.x, np.zeros_like(found.x)), atol=1e-12
    )
    direction = np.asarray(found.unstable_directions(int(index[0])))[:, 0]
    np.testing.assert_allclose(np.abs(direction), np.sqrt(0.5), atol=1e-10)
    assert np.all(np.asarray(found.q) < 1e-20)


def block(a, b):
    """The block-diagonal weights of two decoupled subnetworks."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    out = np.zeros((a.shape[0] + b.shape[0],) * 2)
    out[: a.shape[0], : a.shape[0]], out[a.shape[0] :, a.shape[0] :] = a, b
    return out


# (weights, kind, number of unstable directions): L = -1 + W for a linear network;
# node or focus by the leading eigenvalue (largest real part), whatever the others.
LINEAR_CASES = [
    (block(0.5, [[-1.0, -2.0], [2.0, -1.0]]), "stable node", 0),  # -0.5; -2 +- 2i
    (block([[0.5, -2.0], [2.0, 0.5]], -1.0), "stable focus", 0),  # -0.5 +- 2i; -2
    (block([[2.0, 0.0], [0.3, -1.0]], 0.0), "saddle", 1),
    (block([[1.5, -2.0], [2.0, 1.5]], 0.0), "saddle", 2),
    (block([[1.5, -2.0], [2.0, 1.5]], 1.2), "unstable focus", 3),  # 0.5 +- 2i; 0.2
    (block([[2.0, 0.5], [0.0, 3.0]], 1.5), "unstable node", 3),
]
LINEAR_SOURCE = np.array([0.3, -0.7, 0.2])


@pytest.mark.parametrize("weights, kind, n_unstable", LINEAR_CASES)
def test_linear_network_has_one_fixed_point_of_its_class(weights, kind, n_unstable):
    """F(x) = Wx + I: the one fixed point x* = (1 - W)^{-1} I, classified by the
    eigenvalues of -1 + W (same shapes: one compilation for every case)."""
    net = nd.FirstOrderNetwork(weights, activation=nd.identity)
    found = nd.find_fixed_points(
        net, LINEAR_SOURCE, starts=uniform_starts(20, 3, -3.0, 3.0)
    )
    x_star = np.linalg.solve(np.eye(3) - weights, LINEAR_SOURCE)
    matched(found.x, x_star[None])
    assert found.kind == (kind,)
    assert int(found.n_unstable[0]) == n_unstable
    expected = np.linalg.eigvals(weights - np.eye(3))
    np.testing.assert_allclose(
        np.sort_complex(np.asarray(found.eigenvalues[0])),
        np.sort_complex(expected),
        atol=1e-10,
    )


def test_a_point_moving_further_than_match_tol_is_a_death_and_a_birth():
    """The linear network's one fixed point x*_1 = 0.3 / (1 - w) moves by 0.3 from
    w = 0 to w = 0.5 (more than `match_tol`: a new track) and by 0.025 from 0.5 to
    0.52 (followed)."""
    nets = [
        nd.FirstOrderNetwork(np.diag([w, 0.0, 0.0]), activation=nd.identity)
        for w in (0.0, 0.5, 0.52)
    ]
    stack = jax.tree.map(lambda *a: jnp.stack(a), *nets)
    trace = nd.fixed_points_along(
        stack, LINEAR_SOURCE, starts=uniform_starts(20, 3, -3.0, 3.0), match_tol=0.1
    )
    assert [(e.index, e.kind) for e in trace.events] == [(1, "death"), (1, "birth")]
    assert trace.tracks == ((0,), (1,), (1,))
    np.testing.assert_allclose(trace.landscapes[2].x[0, 0], 0.3 / 0.48, atol=1e-10)


def test_hopf_crossing_of_a_followed_focus():
    """A linear network whose rotating pair (a - 1) +- 2i crosses the imaginary axis
    between a = 0.9 and a = 1.1: its one fixed point, followed, turns from a stable
    to an unstable focus there, a Hopf event."""
    rotation = [[[a, -2.0], [2.0, a]] for a in (0.8, 0.9, 1.1, 1.2)]
    nets = [
        nd.FirstOrderNetwork(block(r, 0.0), activation=nd.identity) for r in rotation
    ]
    stack = jax.tree.map(lambda *a: jnp.stack(a), *nets)
    trace = nd.fixed_points_along(
        stack, LINEAR_SOURCE, starts=uniform_starts(20, 3, -3.0, 3.0)
    )
    assert [(e.index, e.kind, e.tracks) for e in trace.events] == [(2, "Hopf", (0,))]
    assert [s.kind for s in trace.landscapes] == [("stable focus",)] * 2 + [
        ("saddle",)
    ] * 2


def hopfield_points():
    """The 9 fixed points (u, u, v, v), u, v in {0, +-m}, and their numbers of
    unstable directions (one per zero of u, v)."""
    points, unstable = [], []
    for u, v in itertools.product((0.0, M, -M), repeat=2):
        points.append([u, u, v, v])
        unstable.append(int(u == 0) + int(v == 0))
    return np.array(points), np.array(unstable)


def test_hopfield_network_stores_its_patterns_as_its_only_attractors(hopfield):
    net, I, found = hopfield
    expected, unstable = hopfield_points()
    index = matched(found.x, expected)
    assert np.asarray(found.n_unstable)[index].tolist() == unstable.tolist()
    kinds = [found.kind[i] for i in index]
    assert kinds == ["saddle" if k else "stable node" for k in unstable]
    stored = np.concatenate([M * PATTERNS, -M * PATTERNS])
    matched(found.x[found.attractors], stored)
    # The origin: L = -1 + beta P (P the projection on the patterns' span).
    origin = int(index[0])
    np.testing.assert_allclose(
        found.eigenvalues[origin], [BETA - 1, BETA - 1, -1, -1], atol=1e-10
    )
    assert np.sum(found.starts) <= 200 and np.all(np.asarray(found.starts) >= 1)


def test_saddles_have_the_unstable_directions_their_spectrum_says(hopfield):
    """The unstable basis of each saddle has as many vectors as its spectrum has
    eigenvalues with Re > 0, is orthonormal and spans an invariant subspace of L
    on which L expands."""
    net, I, found = hopfield
    spectra = np.asarray(nd.spectrum(net, found.x, np.zeros_like(found.x)))
    L = np.asarray(nd.linearisation(net, found.x, np.zeros_like(found.x)))
    for i in np.flatnonzero(found.saddles):
        U = np.asarray(found.unstable_directions(int(i)))
        assert U.shape[1] == int(found.n_unstable[i]) == np.sum(spectra[i].real > 0)
        np.testing.assert_allclose(U.T @ U, np.eye(U.shape[1]), atol=1e-10)
        LU = L[i] @ U
        np.testing.assert_allclose(LU, U @ (U.T @ LU), atol=1e-10)
        assert np.all(np.linalg.eigvals(U.T @ LU).real > 0)


def test_relaxing_from_a_saddles_unstable_manifold_reaches_an_attractor(hopfield):
    """From x_s +- eps v, v a generic direction of the saddle's unstable space, the
    relaxation (the ODE by Euler steps of 0.2 tau) settles on an attractor of the
    landscape; from the mixture (m, m, 0, 0) its two branches reach the patterns
    (m, m, m, m) and (m, m, -m, -m) it separates. (Along a basis vector of the
    origin's unstable plane the flow stays on an invariant set and ends on a mixture
    saddle: the certificate of `nd.relax` reports that as unstable.)"""
    net, I, found = hopfield
    x = np.asarray(found.x)
    rng = np.random.default_rng(1)
    starts, saddle = [], []
    for i in np.flatnonzero(found.saddles):
        U = np.asarray(found.unstable_directions(int(i)))
        v = U @ rng.normal(size=U.shape[1])
        v /= np.linalg.norm(v)
        starts += [x[i] + 1e-3 * v, x[i] - 1e-3 * v]
        saddle += [i, i]
    fp = nd.relax(
        net,
        np.zeros((len(starts), 4)),
        x0=np.stack(starts),
        relaxation=nd.Relaxation(
            nd.FixedPointIteration(damping=0.2, patience=1000), rtol=1e-10
        ),
    )
    assert np.all(np.asarray(fp.converged))
    ends = matched_any(np.asarray(fp.x), x[found.attractors])
    at = int(np.argmin(np.max(np.abs(x - [M, M, 0.0, 0.0]), axis=1)))
    reached = x[found.attractors][ends[np.asarray(saddle) == at]]
    matched(reached, np.array([[M, M, M, M], [M, M, -M, -M]]), atol=1e-6)


def matched_any(points, targets, atol=1e-6):
    """The index of the target each point is within `atol` of (asserted)."""
    gaps = np.max(np.abs(points[:, None, :] - targets[None]), axis=-1)
    assert np.all(gaps.min(axis=1) < atol), gaps.min(axis=1)
    return np.argmin(gaps, axis=1)


def test_cam_master_landscape_under_its_clamped_source():
    """The master of a content-addressable memory built on the Hopfield weights,
    visible units 0, 1 clamped to m inside the sum (eq 30): the hidden pair obeys
    v = tanh(beta v), so the master has the fixed points (m, m, v, v), v in
    {m, 0, -m}: two attractors and a saddle (one unstable direction)."""
    W = BETA / 4 * PATTERNS.T @ PATTERNS
    cam = nd.ContentAddressableMemory(W, np.arange(4) < 2, activation=nd.tanh)
    source = cam.training_source(jnp.zeros(4), jnp.array([M, M, 0.5, 0.5]))
    found = nd.find_fixed_points(cam, source, starts=uniform_starts(60, 4))
    expected = np.array([[M, M, M, M], [M, M, 0.0, 0.0], [M, M, -M, -M]])
    index = matched(found.x, expected)
    assert [found.kind[i] for i in index] == ["stable node", "saddle", "stable node"]


@pytest.fixture(scope="module")
def hopfield_cam():
    """The Hopfield network as a content-addressable memory (every unit visible)
    remembering +-m xi_1 and m xi_2 only: -m xi_2 is then a spurious attractor."""
    W = BETA / 4 * PATTERNS.T @ PATTERNS
    cam = nd.ContentAddressableMemory(W, np.ones(4, bool), activation=nd.tanh)
    memories = M * np.array([PATTERNS[0], -PATTERNS[0], PATTERNS[1]])
    found = nd.find_fixed_points(cam, np.zeros(4), starts=uniform_starts(200, 4))
    return cam, memories, found


def test_memory_landscape_counts_memories_saddles_and_spurious_attractors(
    hopfield_cam,
):
    cam, memories, found = hopfield_cam
    summary = nd.memory_landscape(cam, memories, found)
    assert summary["memory_is_attractor"] == [True, True, True]
    assert summary["memories_stored"] == 3
    assert summary["attractors"] == 4
    assert summary["spurious_attractors"] == 1
    assert summary["saddles"] == 5
    assert summary["saddles_by_unstable_directions"] == {1: 4, 2: 1}
    assert summary["unstable"] == summary["slow_points"] == 0


def fold_weights():
    """Self-coupling w of a logistic rate unit r = f(w r + b): the fixed points solve
    w = (logit(x) - b) / x, and the pair collides where w x (1 - x) = 1. With b
    chosen so that x = 0.3 is such a fold, w_f = 1 / 0.21; the other fold of the
    same b lies at the root x2 > 0.5 of logit(x) - 1 / (1 - x) = b."""
    b = np.log(0.3 / 0.7) - 1 / 0.7
    x2 = brentq(lambda x: np.log(x / (1 - x)) - 1 / (1 - x) - b, 0.5, 0.99)
    return b, 1 / 0.21, 1 / (x2 * (1 - x2))


@pytest.fixture(scope="module")
def fold_trace():
    """A 2-unit rate network (unit 2 decoupled and stable) whose self-coupling w
    grows in steps of 0.05 through both folds of the first unit."""
    b, _, _ = fold_weights()
    ws = 4.35 + 0.05 * np.arange(14)
    nets = [nd.RateNetwork(np.diag([w, 0.0])) for w in ws]
    stack = jax.tree.map(lambda *a: jnp.stack(a), *nets)
    starts = uniform_starts(40, 2, 0.0, 1.0)
    return ws, nd.fixed_points_along(stack, np.array([b, 0.0]), starts=starts, steps=ws)


def test_saddle_node_bifurcations_are_reported_at_the_right_step(fold_trace):
    """A stable node and a saddle are born together at the first w above the lower
    fold and die together at the first w above the upper one (the low branch's
    fold)."""
    ws, trace = fold_trace
    _, upper, lower = fold_weights()
    folds = [e for e in trace.events if e.kind == "saddle-node"]
    assert [(e.index, e.born) for e in folds] == [
        (int(np.argmax(ws > lower)), True),
        (int(np.argmax(ws > upper)), False),
    ]
    assert [e.kind for e in trace.events] == ["saddle-node", "saddle-node"]
    # The pair that dies is the low attractor and the saddle, meeting near x = 0.3.
    death = folds[1]
    before = trace.landscapes[death.index - 1]
    kinds = {before.kind[trace.tracks[death.index - 1].index(t)] for t in death.tracks}
    assert kinds == {"stable node", "saddle"}
    assert abs(death.x[0] - 0.3) < 0.05
    attractors = trace.count("stable node")
    assert attractors.tolist() == [1 + int(lower < w < upper) for w in ws]


def test_starts_near_draws_visited_states_with_noise():
    states = np.arange(12.0).reshape(2, 3, 2)  # two trajectories of three states
    exact = np.asarray(nd.starts_near(states, 50, seed=3))
    rows = states.reshape(-1, 2)
    assert all(any(np.array_equal(s, r) for r in rows) for s in exact)
    assert len({tuple(s) for s in exact}) == 6  # 50 draws reach every state
    noisy = np.asarray(nd.starts_near(states, 4000, noise=0.1, seed=3))
    offsets = noisy - rows[np.argmin(np.abs(noisy[:, None] - rows).max(-1), axis=1)]
    np.testing.assert_allclose(offsets.std(axis=0), 0.1, rtol=0.05)


def test_fixed_points_plot_marks_every_point_by_its_kind(hopfield):
    import matplotlib.pyplot as plt

    net, I, found = hopfield
    fig, ax = plt.subplots()
    plot.fixed_points(ax, found, labels={0: "first"})
    drawn = {
        c.get_label(): len(c.get_offsets()) for c in ax.collections if c.get_label()
    }
    assert drawn == {"stable node (4)": 4, "saddle (5)": 5}
    assert [t.get_text() for t in ax.texts] == ["first"]
    plt.close(fig)


def test_landscape_along_plot_counts_and_marks_the_folds(fold_trace):
    import matplotlib.pyplot as plt

    ws, trace = fold_trace
    fig, ax = plt.subplots()
    plot.landscape_along(ax, trace)
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_array_equal(
        lines["attractors"].get_ydata(), trace.count("stable node", "stable focus")
    )
    folds = [e.step for e in trace.events if e.kind == "saddle-node"]
    marked = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":"]
    np.testing.assert_allclose(marked, folds)
    plt.close(fig)


@pytest.mark.slow
def test_trained_cam_figure1_landscape():
    """The cam-figure1 network after the demo's small run (250 Euler updates): its 4
    memories are stable fixed points, every saddle has the unstable directions its
    spectrum says, and the saddles' unstable manifolds (integrated, and relaxed
    from) end on attractors."""
    from neurodyn._demos import cam_figure1 as demo  # demos/cam_figure1.py

    T = demo.memories()
    I = np.zeros_like(T)
    cam = demo.initial_memory()
    weights, _, _ = demo.euler_training(
        cam, I, T, 250, demo.ETA, demo.DT, demo.EULER_STEPS
    )
    trained = demo.with_weights(cam, weights[-1])
    n = trained.n_units
    starts = np.concatenate(
        [
            uniform_starts(300, n, 0.0, 1.0),
            nd.starts_near(nd.memory_start(trained, T), 100, noise=0.1),
        ]
    )
    found = nd.find_fixed_points(trained, np.zeros(n), starts=starts)
    manifolds = nd.unstable_manifolds(trained, np.zeros(n), found)
    summary = nd.memory_landscape(trained, T, found, manifolds=manifolds)
    assert summary["memory_is_attractor"] == [True] * 4
    assert summary["saddles"] >= 3
    spectra = np.asarray(nd.spectrum(trained, found.x, np.zeros_like(found.x)))
    L = np.asarray(nd.linearisation(trained, found.x, np.zeros_like(found.x)))
    for i in np.flatnonzero(found.saddles):
        U = np.asarray(found.unstable_directions(int(i)))
        assert U.shape[1] == int(found.n_unstable[i]) == np.sum(spectra[i].real > 0)
        np.testing.assert_allclose(L[i] @ U, U @ (U.T @ L[i] @ U), atol=1e-8)
    attractors = np.asarray(found.x)[found.attractors]
    matched_any(np.asarray(manifolds.x)[:, -1], attractors, atol=1e-4)
    x = np.asarray(found.x)
    saddles = np.flatnonzero(found.saddles & (np.asarray(found.n_unstable) == 1))
    v = np.stack([np.asarray(found.unstable_directions(int(i)))[:, 0] for i in saddles])
    x0 = np.concatenate([x[saddles] + 1e-3 * v, x[saddles] - 1e-3 * v])
    fp = nd.relax(
        trained, np.zeros_like(x0), x0=x0, relaxation=nd.Relaxation(rtol=1e-10)
    )
    assert np.all(np.asarray(fp.converged))
    matched_any(np.asarray(fp.x), attractors)
    # Each saddle with one unstable direction joins two different memories.
    for pair in summary["saddle_connections"]:
        assert len(pair) == 2 and pair[0] != pair[1] and min(pair) >= 0
