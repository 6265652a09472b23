"""Pineda's master/slave content-addressable memory (Example 3, eqs 28-39): the
master's gradient against finite differences, the three methods and the closed forms
(eqs 35-37); learning stores the memories as attractors of the slave; recall; the
`cam-figure1` run folder recomputed in plain NumPy."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn import Relaxation
from neurodyn._relax import relax_patterns

from .helpers import (
    TIGHT,
    Gradients,
    finite_difference_grad,
    method_names,
    quick,
    relative_error,
    run_demo,
)


RELAXATION = Relaxation(nd.Anderson(), **TIGHT)


def random_memory(n=6, visible=4, p=2, *, seed=0, scale=1.2):
    """A CAM with `visible` visible units, random memories in {0.1, 0.9} (hidden
    entries random too: they must be ignored) and a small random bias."""
    rng = np.random.default_rng(seed)
    cam = nd.ContentAddressableMemory(
        scale * rng.normal(size=(n, n)) / np.sqrt(n), np.arange(n) < visible
    )
    T = rng.uniform(0, 1, size=(p, n))
    T[:, :visible] = 0.1 + 0.8 * rng.integers(0, 2, size=(p, visible))
    I = 0.1 * rng.normal(size=(p, n))
    return cam, jnp.asarray(I), jnp.asarray(T)


def master_fixed_points(cam, I, T):
    """The master's fixed points z* (eq 29), relaxed from eq 39's start state."""
    start = nd.memory_start(cam, T)
    return jax.vmap(
        lambda i, t, z0: relax_patterns(cam, nd.Clamped(i, t), z0, RELAXATION).x
    )(I, T, start)


def master_loss(cam, I, T):
    """E_master (eqs 33, 34) as a function of the weights, by forward relaxation
    alone (for finite differences)."""

    def loss(w):
        model = nd.ContentAddressableMemory(w, cam.visible_units)
        z = master_fixed_points(model, I, T)
        return 0.5 * jnp.sum(jax.vmap(model.error)(z, T) ** 2)

    return loss


@pytest.fixture(scope="module")
def problem():
    cam, I, T = random_memory()
    fd = finite_difference_grad(master_loss(cam, I, T), cam.weights)
    x0 = nd.memory_start(cam, T)
    grads = Gradients(
        lambda m: nd.value_and_grad(cam, I, T, method=m, x0=x0, **quick(m))
    )
    return cam, I, T, fd, grads


@pytest.mark.parametrize("method", method_names())
def test_master_gradient_matches_finite_differences(problem, method):
    *_, fd, grads = problem
    E, g = grads[method]
    assert relative_error(g.weights, fd) <= 1e-6
    assert g.visible_units is None


def test_methods_agree(problem):
    cam, I, T, _, grads = problem
    values = list(grads.values())
    for E, g in values[1:]:
        assert abs(float(E) - float(values[0][0])) <= 1e-12
        assert relative_error(g.weights, values[0][1].weights) <= 1e-6
    # E is E_master (eq 33): the master's visible units against the memories.
    z = master_fixed_points(cam, I, T)
    E_master = 0.5 * np.sum(np.where(cam.visible_units, T - z, 0) ** 2)
    assert abs(float(values[0][0]) - E_master) <= 1e-12


def test_master_is_eq_31_with_thresholds(problem):
    """g(WZ) + I = g(sum_{k in H} w_ik z_k - theta_i) + I, theta = -W_V T_V (eqs
    29-32); the visible entries of z do not enter."""
    cam, I, T, *_ = problem
    z = jnp.asarray(np.random.default_rng(9).uniform(size=T.shape[1]))
    hidden = jnp.where(cam.hidden_units, z, 0)
    eq_31 = cam.activation(cam.weights @ hidden - cam.thresholds(T[0])) + I[0]
    master = cam.drive(z, cam.training_source(I[0], T[0]))
    assert relative_error(master, eq_31) <= 1e-14
    moved = jnp.where(cam.visible_units, 0.3, z)
    assert relative_error(cam.drive(moved, nd.Clamped(I[0], T[0])), master) == 0
    slave = cam.drive(z, I[0])  # eq 1: a plain source is the slave
    assert relative_error(slave, cam.activation(cam.weights @ z) + I[0]) == 0


def test_closed_form_equals_generic(problem):
    """Relax eq 36 to y*, sum eq 35's y* Z*^T over memories: it is -dE/dW."""
    cam, I, T, _, grads = problem
    z = master_fixed_points(cam, I, T)

    @jax.vmap
    def velocity(z, i, t):
        source = cam.training_source(i, t)
        J = cam.error(z, t)
        out = RELAXATION.solve(
            lambda y: cam.error_dynamics(y, z, source, J), jnp.zeros_like(z), cam.tau
        )
        ok = out.result == nd.RESULTS.successful
        return cam.weight_dynamics(out.y, z, source), out.y, ok

    velocities, y, ok = velocity(z, I, T)
    assert np.all(np.asarray(ok))
    _, g = grads["RecurrentBackprop"]
    assert relative_error(-jnp.sum(velocities, axis=0), g.weights) <= 1e-8
    # eq 35 uses Z (T on visible units), not z: with z it would be wrong.
    wrong = jnp.einsum("ai,aj->ij", y, z)
    assert relative_error(-wrong, g.weights) > 1e-3

    # y* = g'(v) z*, with z* the generic adjoint fixed point (eq 37: v = W Z*).
    J = cam.error(z[0], T[0])
    source = nd.Clamped(I[0], T[0])
    adjoint = RELAXATION.solve(
        lambda a: nd.adjoint_field(cam, z[0], source, a, J), jnp.zeros_like(J), 1.0
    ).y
    v = cam.weights @ cam.clamped_state(z[0], T[0])
    assert relative_error(y[0], cam.activation.derivative(v) * adjoint) <= 1e-9


@pytest.mark.slow
def test_jacobian_norm_with_targets_is_the_masters():
    """Given the targets, `jacobian_norm` measures the Jacobian `train` penalises,
    the master's at z* (eq 29), not the slave's: Hutchinson's estimate with the same
    probes from the dense Jacobians of the clamped drive."""
    cam, I, T = random_memory()
    key, probes = jr.key(5), 4
    value = nd.jacobian_norm(
        cam,
        I,
        T,
        key=key,
        probes=probes,
        x0=nd.memory_start(cam, T),
        relaxation=RELAXATION,
    )
    z = master_fixed_points(cam, I, T)
    expected = 0.0
    for a, k in enumerate(jr.split(key, I.shape[0])):
        A = jax.jacfwd(lambda z_: cam.drive(z_, nd.Clamped(I[a], T[a])))(z[a])
        v = jr.normal(k, (probes, z.shape[1]), dtype=z.dtype)
        expected += float(jnp.mean(jnp.sum((v @ A.T) ** 2, axis=-1)))
    np.testing.assert_allclose(value, expected, rtol=1e-8)


@pytest.fixture(scope="module")
def trained():
    cam, _, T = random_memory(8, 6, 2, seed=3, scale=0.85)
    I = jnp.zeros_like(T)
    # Anderson alone: a third of the default chain's compile (E < 1e-3 from update 30)
    result = nd.train(
        cam,
        I,
        T,
        optimizer=optax.sgd(3.0),
        steps=60,
        relaxation=nd.Relaxation(nd.Anderson()),
    )
    return result.model, I, T, result.history


def test_slave_returns_to_every_memory(trained):
    """After training the master, the slave (eq 1) relaxed from each memory
    (visible = T, hidden = 0.5) stays within 0.05 of it on every visible unit."""
    cam, I, T, history = trained
    assert history.E_total[-1] < 1e-3 < history.E_total[0]
    fp = nd.relax(cam, I, x0=nd.memory_start(cam, T), throw=True)
    gap = np.abs(np.asarray(fp.x - T))[:, np.asarray(cam.visible_units)]
    assert np.all(gap < 0.05)


def test_recall_from_partial_and_full_cues(trained):
    cam, _, T, _ = trained
    visible = np.asarray(cam.visible_units)
    full = nd.recall(cam, T, np.broadcast_to(visible, T.shape), T)
    assert np.array_equal(np.asarray(full.memory), np.arange(len(T)))
    assert np.all(np.asarray(full.converged))
    assert np.all(np.asarray(full.distance) < 0.05)
    # eq 28: the known units start at the cue, every other unit at b.
    known = np.zeros(T.shape, bool)
    known[:, :2] = True
    x0 = nd.cue_state(cam, T, known, fill=0.3)
    assert np.allclose(x0, np.where(known, T, 0.3))
    # a state far from every memory is no memory
    far = jnp.where(cam.visible_units, 1 - T[0], 0.5)
    memory, distance = nd.nearest_memory(cam, far[None], T)
    assert int(memory[0]) == -1 and float(distance[0]) > 0.5


@pytest.mark.slow
def test_stochastic_and_analog_learning_run_unchanged():
    cam, _, T = random_memory(8, 6, 2, seed=3, scale=0.85)
    I = jnp.zeros_like(T)
    stochastic = nd.train(
        cam,
        I,
        T,
        optimizer=optax.sgd(3.0),
        steps=60,
        mode="stochastic",
        key=jr.key(0),
    )
    assert stochastic.history.E_total[-1] < 0.2 * stochastic.history.E_total[0]
    analog = nd.analog_learning(
        cam, I, T, eta=0.2, t1=100.0, saveat=jnp.linspace(0.0, 100.0, 3)
    )
    assert analog.loss[-1] < 0.2 * analog.loss[0]
    assert analog.model.weights.shape == (3, 8, 8)


def test_bad_arguments_are_named():
    w = np.zeros((4, 4))
    with pytest.raises(ValueError, match="`visible_units` must be a boolean mask"):
        nd.ContentAddressableMemory(w, np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="`visible_units` must have shape"):
        nd.ContentAddressableMemory(w, np.ones(3, bool))
    with pytest.raises(ValueError, match="at least one visible unit"):
        nd.ContentAddressableMemory(w, np.zeros(4, bool))
    with pytest.raises(ValueError, match="`weights` must be a square"):
        nd.ContentAddressableMemory(np.zeros((4, 3)), np.ones(4, bool))
    cam = nd.ContentAddressableMemory(w, np.arange(4) < 2)
    with pytest.raises(ValueError, match="`known` marks hidden units"):
        nd.cue_state(cam, np.zeros(4), np.ones(4, bool))
    with pytest.raises(ValueError, match="`known` must be a boolean mask"):
        nd.cue_state(cam, np.zeros(4), np.array([1, 0, 0, 0]))
    with pytest.raises(ValueError, match="`cue` must have shape"):
        nd.cue_state(cam, np.zeros(5), np.zeros(4, bool))
    with pytest.raises(ValueError, match="`memories` must have shape"):
        nd.recall(cam, np.zeros(4), np.zeros(4, bool), np.zeros(4))


def numpy_slave(weights, x0, dt=0.05, steps=4000):
    """Euler steps of dx/dt = -x + g(Wx) (eq 1, logistic g, I = 0), in NumPy."""
    x = x0.copy()
    for _ in range(steps):
        x = x + dt * (-x + 1 / (1 + np.exp(-x @ weights.T)))
    return x


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out, metrics, arrays = run_demo(tmp_path_factory, "cam-figure1")
    return out, metrics, arrays["params"], arrays["data"]


@pytest.mark.slow
def test_demo_run_folder_recalls_every_memory_in_numpy(demo_run):
    out, metrics, params, data = demo_run
    assert set(params) == {"weights", "visible_units"}
    assert params["weights"].shape == (15, 15)
    assert params["visible_units"].sum() == 10
    T, visible = data["T"], params["visible_units"]
    assert T.shape == (4, 15)
    x = numpy_slave(params["weights"], np.where(visible, T, 0.5))
    assert np.all(np.abs(x - T)[:, visible] < 0.05)
    E_slave = 0.5 * np.sum(np.where(visible, T - x, 0) ** 2)
    assert abs(E_slave - metrics["final_E_total_slave"]) <= 1e-3 * E_slave + 1e-9
    assert metrics["final_E_total_master"] < 1e-2
    for method in ("euler_dt1", "adaptive"):
        assert metrics["updates_to_E_below_1e-2"][method]["master"] is not None
    assert metrics["recalled_from_full_cue"] == 4
    for name in ("figure1.png", "recall.png"):
        assert (out / name).stat().st_size > 10_000


def numpy_slave_leading_eigenvalue(weights, x):
    """The residual |g(Wx) - x| of eq 1 (I = 0) and the largest real part of the
    eigenvalues of its linearisation -1 + G W, G = diag(g'(Wx)), in NumPy."""
    s = 1 / (1 + np.exp(-weights @ x))
    residual = np.max(np.abs(s - x))
    L = -np.eye(len(x)) + (s * (1 - s))[:, None] * weights
    return residual, np.max(np.linalg.eigvals(L).real)


@pytest.mark.slow
def test_demo_counts_only_attractors_the_dynamics_hold(demo_run):
    """Every random start counted as reaching a memory or a spurious attractor ended
    at a fixed point of the slave whose every eigenvalue has a negative real part
    (NumPy, from the run folder), and so does every spurious attractor saved; a
    saddle counted as an attractor fails here. The counts add up."""
    out, metrics, params, _ = demo_run
    recall = np.load(out / "recall.npz")
    basins = metrics["random_starts"]
    outcomes = recall["random_start_outcomes"]
    assert len(outcomes) == basins["starts"]
    counted = [int(np.sum(outcomes == a)) for a in range(4)]
    assert counted == basins["reached_memory"]
    assert np.sum(outcomes == -1) == basins["reached_spurious"]
    assert np.sum(outcomes == -3) == basins["settled_on_a_saddle"]
    held = np.concatenate(
        [recall["random_start_states"][outcomes >= -1], recall["spurious_attractors"]]
    )
    assert len(recall["spurious_attractors"]) == basins["distinct_spurious_attractors"]
    for x in held:
        residual, leading = numpy_slave_leading_eigenvalue(params["weights"], x)
        assert residual < 1e-5
        assert leading < 0, leading


@pytest.mark.slow
def test_demo_landscape_holds_the_memories_and_the_saddles_between_them(demo_run):
    """The demo's landscape (docs/landscape.md, small run): the 4 memories are stable
    fixed points, no spurious attractor, 5 saddles, each one-direction saddle
    between two different memories."""
    _, metrics, _, _ = demo_run
    landscape = metrics["landscape"]
    assert landscape["memory_is_attractor"] == [True] * 4
    assert landscape["memories_stored"] == 4
    assert landscape["spurious_attractors"] == 0
    assert landscape["saddles"] == 5
    for pair in landscape["saddle_connections"]:
        assert len(pair) == 2 and pair[0] != pair[1]


def test_methods_agree_to_their_measured_precision(problem):
    """docs/cam.md's numbers with a 100x margin: each method within 6.3e-10 of the
    central differences (their own error) and within 4e-12 of the others."""
    *_, fd, grads = problem
    (E0, g0), *others = grads.values()
    assert relative_error(g0.weights, fd) <= 6e-8
    for E, g in others:
        assert relative_error(g.weights, fd) <= 6e-8
        assert relative_error(g.weights, g0.weights) <= 4e-10


@pytest.mark.slow
def test_demo_headline_numbers(demo_run):
    """docs/cam.md's figure 1: the master's E_total falls below 1e-2 after 75 updates
    and the slave's after 124, by Euler (dt = 1) and adaptive relaxation alike; the
    small run's 250 updates are the full run's first 250, so the counts are the
    same. After 250 updates (small run, float64): E_master 2.03e-4, E_slave 6.52e-4,
    the two methods equal to 1e-8; the 100 random starts reach the memories 14, 50,
    18 and 18 times."""
    _, metrics, _, _ = demo_run
    for method in ("euler_dt1", "adaptive"):
        counts = metrics["updates_to_E_below_1e-2"][method]
        assert counts == {"master": 75, "slave": 124}, method
    assert metrics["random_starts"]["reached_memory"] == [14, 50, 18, 18]
    adaptive = metrics["adaptive"]
    for key, value in (("master", 2.03e-4), ("slave", 6.52e-4)):
        euler = metrics[f"final_E_total_{key}"]
        assert euler == pytest.approx(value, rel=5e-3)
        assert adaptive[f"final_E_total_{key}"] == pytest.approx(euler, abs=1e-8)
