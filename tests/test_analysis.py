"""Spectra, stability along learning, Hessians and Naumov's matrix forms (float64)."""

import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn._analysis import naumov, stability

from .helpers import (
    NETWORK_CLASSES,
    QUICK,
    random_network,
    random_patterns,
    relative_error,
    run_demo,
)


TIGHT_RELAX = dict(relaxation=nd.Relaxation(rtol=1e-11, atol=1e-13))


@pytest.fixture(scope="module", params=NETWORK_CLASSES, ids=lambda c: c.__name__)
def relaxed(request):
    net = random_network(request.param, scale=1.5, activation=nd.tanh)
    I, T = random_patterns()
    return net, I, T, nd.relax(net, I, throw=True, **QUICK)


def explicit_jacobian(net, x, I):
    """(-1 + diag(g'(u)) W)/tau written out by hand, u the net input."""
    W = np.where(net.connectivity, net.weights, 0.0)
    u = W @ x
    if isinstance(net, nd.RateNetwork):
        u = u + np.where(net.input_units, I, 0.0)
    gain = np.asarray(net.activation.derivative(jnp.asarray(u)))
    return (-np.eye(len(x)) + gain[:, None] * W) / net.tau


def test_spectra_are_numpys_eigenvalues_of_the_explicit_jacobian(relaxed):
    net, I, _, fp = relaxed
    forward = np.asarray(nd.spectrum(net, fp, I))
    adjoint = np.asarray(nd.adjoint_spectrum(net, fp, I))
    assert forward.shape == adjoint.shape == I.shape
    for p in range(I.shape[0]):
        L = explicit_jacobian(net, np.asarray(fp.x[p]), np.asarray(I[p]))
        assert np.allclose(nd.linearisation(net, fp, I)[p], L, rtol=0, atol=1e-12)
        reference = np.linalg.eigvals(L)
        assert nd.spectral_distance(forward[p], reference) <= 1e-8
        assert nd.spectral_distance(adjoint[p], np.linalg.eigvals(L.T)) <= 1e-8
        assert np.all(np.diff(forward[p].real) <= 0)  # leading first
    assert nd.almeida_check(net, fp, I) <= 1e-10
    assert np.all(forward.real < 0)  # relaxation found stable fixed points
    one = nd.spectrum(net, fp.x[1], I[1])  # single pattern, from the state itself
    assert np.allclose(one, forward[1], atol=1e-12)


def test_spectrum_argument_errors(relaxed):
    net, I, _, fp = relaxed
    with pytest.raises(ValueError, match="`fp` has 3 patterns but `I` has 2"):
        nd.spectrum(net, fp, I[:2])
    with pytest.raises(ValueError, match="`I` holds 3 patterns"):
        nd.spectrum(net, fp.x[0], I)
    with pytest.raises(ValueError, match="`fp` must have shape"):
        nd.spectrum(net, jnp.zeros(4), I[0])


@pytest.fixture(scope="module")
def curvature():
    net = random_network(nd.FirstOrderNetwork, n=5, scale=1.5)
    I, T = random_patterns(n=5, p=2)
    return net, I, T, np.asarray(nd.hessian(net, I, T, **QUICK))


def test_hessian_matches_finite_differences_of_the_gradient(curvature):
    net, I, T, H = curvature
    n2 = net.weights.size
    assert H.shape == net.weights.shape * 2

    def grad(w):
        model = eqx.tree_at(lambda m: m.weights, net, w)
        _, g = nd.value_and_grad(model, I, T, method=nd.ImplicitDiff(), **QUICK)
        return np.asarray(g.weights).ravel()

    eps, w = 1e-5, net.weights
    columns = []
    for k in range(n2):
        e = jnp.zeros(n2).at[k].set(eps).reshape(w.shape)
        columns.append((grad(w + e) - grad(w - e)) / (2 * eps))
    H_fd = np.stack(columns, axis=1)
    assert relative_error(H.reshape(n2, n2), H_fd) <= 1e-5
    assert np.allclose(H.reshape(n2, n2), H.reshape(n2, n2).T, atol=1e-12)
    absent = ~np.asarray(net.connectivity)
    assert np.all(H[absent] == 0) and np.all(H[..., absent] == 0)


def test_hessian_vector_product_is_dense_h_times_v(curvature):
    net, I, T, H = curvature
    v = np.random.default_rng(3).normal(size=net.weights.shape)
    Hv = nd.hessian_vector_product(net, I, T, v, **QUICK)
    n2 = net.weights.size
    assert relative_error(Hv, (H.reshape(n2, n2) @ v.ravel()).reshape(v.shape)) <= 1e-10
    eigenvalues = np.asarray(nd.hessian_eigenvalues(H))
    assert np.allclose(eigenvalues, np.linalg.eigvalsh(H.reshape(n2, n2)), atol=1e-12)
    with pytest.raises(ValueError, match="`v` must have the shape of the weights"):
        nd.hessian_vector_product(net, I, T, v[:2])


def feedforward_problem():
    rng = np.random.default_rng(0)
    sizes = [4, 5, 3, 2]
    weights = [jnp.asarray(rng.normal(size=(b, a))) for a, b in zip(sizes, sizes[1:])]
    biases = [jnp.asarray(rng.normal(size=b)) for b in sizes[1:]]
    return weights, biases, jnp.asarray(rng.normal(size=4)), jnp.asarray([0.3, -0.5])


@pytest.mark.parametrize("activation", [nd.tanh, nd.logistic], ids=lambda a: a.name)
def test_naumov_feedforward_forms_match_autodiff(activation):
    weights, biases, x, target = feedforward_problem()

    def E(ws):
        _, zs = naumov.feedforward(ws, biases, x, activation)
        return 0.5 * jnp.sum((target - zs[-1]) ** 2)

    grads, hessians = jax.jit(jax.grad(E))(weights), jax.jit(jax.hessian(E))(weights)

    @jax.jit
    def matrix_forms(ws):
        args = (ws, biases, x, target, activation)
        return (
            naumov.feedforward_gradients(*args),
            naumov.feedforward_hessians(*args),
            naumov.feedforward_hessian_factors(*args),
        )

    forms, blocks, factors = matrix_forms(weights)
    for k, W in enumerate(weights):
        size = W.size
        assert np.allclose(forms[k], grads[k], rtol=0, atol=1e-14)
        assert np.linalg.matrix_rank(np.asarray(forms[k])) == 1
        assert np.allclose(blocks[k], hessians[k][k].reshape(size, size), atol=1e-14)
        # lambda(A (x) z z^T) = {0 with multiplicity (n-1)m, |z|^2 lambda(A)}
        A, z = factors[k]
        identity = naumov.kronecker_eigenvalues(A, z)
        assert np.allclose(identity, np.linalg.eigvalsh(blocks[k]), atol=1e-13)
        # NumPy's spectrum of the block has exactly (n - 1) m zeros (A has full rank)
        numpy_spectrum = np.linalg.eigvalsh(np.asarray(blocks[k]))
        zeros = np.abs(numpy_spectrum) <= 1e-12 * np.max(np.abs(numpy_spectrum))
        assert np.sum(zeros) == (W.shape[1] - 1) * W.shape[0]
        assert np.linalg.matrix_rank(np.asarray(A)) == W.shape[0]


def test_naumov_bptt_forms_match_autodiff():
    rng = np.random.default_rng(1)
    m, n, t = 3, 4, 5
    W, U = (
        jnp.asarray(rng.normal(size=(m, n))),
        jnp.asarray(0.7 * rng.normal(size=(m, m))),
    )
    b, xs = jnp.asarray(rng.normal(size=m)), jnp.asarray(rng.normal(size=(t, n)))
    target = jnp.asarray(rng.uniform(size=m))
    act = nd.tanh

    def E(W, U, b):
        _, zs = naumov.rnn_forward(W, U, b, xs, act)
        return 0.5 * jnp.sum((target - zs[-1]) ** 2)

    for auto, form in zip(
        jax.jit(jax.grad(E, argnums=(0, 1, 2)))(W, U, b),
        jax.jit(naumov.bptt_gradients, static_argnums=5)(W, U, b, xs, target, act),
    ):
        assert np.allclose(form, auto, rtol=0, atol=1e-14)
    H = jax.jit(jax.hessian(E))(W, U, b).reshape(m * n, m * n)

    def forms(intermediate_curvature):
        return jax.jit(
            lambda W, U, b: naumov.bptt_hessian(
                W, U, b, xs, target, act, intermediate_curvature=intermediate_curvature
            )
        )(W, U, b)

    assert np.allclose(forms(True), H, atol=1e-13)
    # Eq 77 as printed drops the curvature of the earlier steps: not exact for tanh.
    printed = forms(False)
    assert relative_error(printed, H) > 1e-3
    # The s = zeta = t term alone obeys the eigenvalue identity (Naumov eq 105).
    M = naumov.bptt_hessian_blocks(W, U, b, xs, target, act)[t - 1, t - 1]
    B = jnp.kron(M, jnp.outer(xs[-1], xs[-1]))
    assert np.allclose(
        naumov.kronecker_eigenvalues(M, xs[-1]), np.linalg.eigvalsh(B), atol=1e-13
    )


def linear_path(weights_along):
    """A stacked linear rate network, one model per weight matrix."""
    models = [nd.RateNetwork(w, activation="identity") for w in weights_along]
    return jax.tree.map(lambda *a: jnp.stack(a), *models)


def test_saddle_node_crossing_found_where_the_weight_passes_one():
    """x* = I / (1 - w): the eigenvalue -1 + w crosses 0 at w = 1, i.e. between
    snapshots 6 and 7 of w_k = 0.4 + 0.09 k (crossing at k = 6 2/3)."""
    ws = 0.4 + 0.09 * np.arange(10)
    trace = nd.stability_along(linear_path(ws[:, None, None]), jnp.ones(1))
    assert np.allclose(trace.leading[:, 0].real, -1 + ws, atol=1e-12)
    assert np.allclose(trace.x[:, 0, 0], 1 / (1 - ws), rtol=1e-10)  # unstable too
    loss = trace.loss
    assert (loss.index, loss.pattern, loss.kind) == (7, 0, "saddle-node")
    assert loss.crossing == pytest.approx(6 + 2 / 3, abs=1e-9)


# Slow tier (its own continuation compile, 2 units): the default tier classifies a
# Hopf pair in test_fold_when_a_fixed_point_vanishes and finds a crossing in
# test_saddle_node_crossing_found_where_the_weight_passes_one.
@pytest.mark.slow
def test_hopf_crossing_of_a_rotating_pair():
    """W = a 1 + b R (R a quarter turn): eigenvalues -1 + a +- i b cross at a = 1
    with a nonzero frequency b."""
    R = np.array([[0.0, -1.0], [1.0, 0.0]])
    a = np.linspace(0.5, 1.3, 9)  # a = 1.0 at k = 5, > 1 from k = 6
    trace = nd.stability_along(
        linear_path(a[:, None, None] * np.eye(2) + 0.4 * R), jnp.ones((3, 2))
    )
    assert np.allclose(trace.leading.real, (-1 + a)[:, None], atol=1e-12)
    assert np.allclose(np.abs(trace.leading.imag), 0.4, atol=1e-12)
    assert trace.loss.kind == "Hopf" and trace.loss.index == 6
    assert trace.loss.crossing == pytest.approx(5.0, abs=1e-9)
    stable = nd.stability_along(linear_path(a[:5, None, None] * np.eye(2)), jnp.ones(2))
    assert stable.loss is None


# Slow tier (a tight training run with snapshots, ~11 s): the default tier's guards
# are test_monitor_continue_records_without_stopping (what "stop" and "continue"
# return at the same loss) and test_settings' monitor test.
@pytest.mark.slow
def test_monitor_stops_training_at_the_loss():
    """One linear unit learning T = 3 I: SGD with eta = 0.5 jumps from w = 0.2 over
    the boundary w = 1 in the first update (w = 1.5671875)."""
    net = nd.RateNetwork(np.array([[0.2]]), activation="identity")
    I, T = np.ones((1, 1)), 3 * np.ones((1, 1))
    monitor = nd.StabilityMonitor(I)
    result = nd.train(
        net,
        I,
        T,
        optimizer=optax.sgd(0.5),
        steps=20,
        callback=monitor,
        snapshot_every=1,
        **TIGHT_RELAX,
    )
    after = nd.stability_along(result.history, I)  # the same, from the snapshots
    assert np.asarray(after.steps).tolist() == [0, 1] and after.loss == monitor.loss
    assert result.history.E_total.shape == (2,) and np.isnan(result.history.E_total[1])
    assert float(result.model.weights[0, 0]) == pytest.approx(1.5671875, rel=1e-9)
    assert monitor.loss.index == 1 and monitor.loss.kind == "saddle-node"
    assert monitor.trace().leading.real[:, 0] == pytest.approx([-0.8, 0.5671875])
    with pytest.warns(RuntimeWarning, match="lost stability at update 1"):
        warn = nd.StabilityMonitor(I, on_loss="warn")
        unstable = eqx.tree_at(lambda m: m.weights, net, jnp.full((1, 1), 1.5))
        assert warn(0, net) is False and warn(1, unstable) is False  # goes on
    no_snapshots = eqx.tree_at(lambda h: h.snapshots, result.history, None)
    with pytest.raises(ValueError, match="History without snapshots"):
        nd.stability_along(no_snapshots, I)
    with pytest.raises(ValueError, match="`on_loss` must be"):
        nd.StabilityMonitor(I, on_loss="halt")


def test_stability_along_takes_a_run_by_its_class_not_its_attributes():
    """An `AnalogRun` is read by its save times and models; an object that only has
    the attributes of a run or a history (`ts` and `model`, `snapshot_steps`) is not
    one, and is refused by name."""
    net = nd.RateNetwork(np.array([[0.2]]), activation="identity")
    I, T = np.ones((1, 1)), 0.5 * np.ones((1, 1))
    run = nd.analog_learning(net, I, T, eta=0.1, t1=1.0, saveat=np.array([0.0, 1.0]))
    trace = nd.stability_along(run, I)
    assert np.asarray(trace.steps).tolist() == [0.0, 1.0]
    assert np.allclose(trace.leading[:, 0].real, -1 + run.model.weights[:, 0, 0])
    lookalikes = [
        types.SimpleNamespace(ts=run.ts, model=run.model),
        types.SimpleNamespace(snapshot_steps=run.ts, snapshots=run.model),
    ]
    for lookalike in lookalikes:
        with pytest.raises(ValueError, match="must be a `History`"):
            nd.stability_along(lookalike, I)


def test_continuation_predicts_along_the_branch_tangent():
    """The predictor moves a fixed point to the next model along the branch's
    tangent (the implicit function theorem in forward mode), so its error is second
    order in the step (halving the step quarters it) where staying put is first
    order; Newton then lands on the next model's relaxed fixed point."""
    net = random_network(nd.FirstOrderNetwork, scale=1.5, activation=nd.tanh)
    I, _ = random_patterns()
    x = nd.relax(net, I, throw=True, **TIGHT_RELAX).x
    direction = np.random.default_rng(2).normal(size=net.weights.shape)

    def errors(step):
        moved = eqx.tree_at(lambda m: m.weights, net, net.weights + step * direction)
        target = nd.relax(moved, I, x0=x, throw=True, **TIGHT_RELAX).x
        predicted = jax.vmap(lambda i, x_: stability._predict(net, moved, i, x_))(I, x)
        return (
            float(jnp.max(jnp.abs(predicted - target))),
            float(jnp.max(jnp.abs(x - target))),
        )

    (predicted, stayed), (half, _) = errors(1e-2), errors(5e-3)
    assert predicted < 0.05 * stayed
    assert 3.5 < predicted / half < 4.5  # second order in the step
    moved = eqx.tree_at(lambda m: m.weights, net, net.weights + 1e-2 * direction)
    models = jax.tree.map(lambda *a: jnp.stack(a), net, moved)
    trace = nd.stability_along(models, I, x0=x)
    target = nd.relax(moved, I, x0=x, throw=True, **TIGHT_RELAX).x
    assert np.allclose(trace.x[1], target, atol=1e-10)


def test_fold_when_a_fixed_point_vanishes():
    """A branch lost between snapshots 2 and 3 (Newton found no fixed point there)
    with a real leading eigenvalue before it is a fold at snapshot 3; a complex one
    before it, a Hopf; lost at the first snapshot, a fold with no eigenvalue."""
    steps = np.array([0, 10, 20, 30])
    leading = np.array([[-0.5], [-0.3], [-0.1], [np.nan]], complex)
    tracked = np.array([[True], [True], [True], [False]])
    loss = nd.first_stability_loss(steps, leading, tracked)
    assert (loss.index, loss.step, loss.crossing, loss.kind) == (3, 30.0, 30.0, "fold")
    assert loss.eigenvalue == -0.1
    hopf = nd.first_stability_loss(steps, leading + 0.2j, tracked)
    assert hopf.kind == "Hopf" and hopf.eigenvalue == -0.1 + 0.2j
    first = nd.first_stability_loss(steps, leading, ~tracked)
    assert first.index == 0 and first.kind == "fold" and np.isnan(first.eigenvalue)
    assert nd.first_stability_loss(steps[:3], leading[:3], tracked[:3]) is None
    # tol moves the boundary: Re = -0.1 counts as lost for tol = -0.2
    early = nd.first_stability_loss(steps[:3], leading[:3], tol=-0.2)
    assert early.index == 2 and early.crossing == pytest.approx(15.0)


def test_monitor_continue_records_without_stopping():
    """`on_loss="continue"`: the loss is recorded and training is not stopped;
    `"stop"` stops at the same model."""
    net = nd.RateNetwork(np.array([[0.2]]), activation="identity")
    unstable = eqx.tree_at(lambda m: m.weights, net, jnp.full((1, 1), 1.5))
    for on_loss, stops in (("continue", False), ("stop", True)):
        monitor = nd.StabilityMonitor(jnp.ones(1), on_loss=on_loss)
        assert monitor(0, net) is False
        assert monitor(1, unstable) is stops
        assert monitor.loss.index == 1 and monitor.loss.kind == "saddle-node"
        assert monitor.loss.eigenvalue == pytest.approx(0.5)
    assert monitor(2, net) is False  # after a loss, nothing more to act on


def test_hessian_along_a_stack_is_the_closed_form():
    """One linear unit, x* = I / (1 - w), E = (T - x*)^2 / 2:
    d2E/dw2 = (dx/dw)^2 - (T - x*) d2x/dw2 with dx/dw = I/(1-w)^2,
    d2x/dw2 = 2 I/(1-w)^3 (1e-4 off at the default relaxation tolerances, hence
    tight ones)."""
    ws = np.array([0.2, 0.5, -0.4])
    I, T = 0.7, 1.3
    models = linear_path(ws[:, None, None])
    eigenvalues = np.asarray(
        nd.hessian_along(models, jnp.full(1, I), jnp.full(1, T), **QUICK)
    )
    x = I / (1 - ws)
    expected = (I / (1 - ws) ** 2) ** 2 - (T - x) * 2 * I / (1 - ws) ** 3
    assert eigenvalues.shape == (3, 1)
    np.testing.assert_allclose(eigenvalues[:, 0], expected, rtol=1e-7)


@pytest.fixture(scope="module")
def stability_run(tmp_path_factory):
    out, metrics, _ = run_demo(tmp_path_factory, "stability")
    return out, metrics


@pytest.mark.slow
def test_stability_demo_run_folder(stability_run):
    """docs/stability.md: eta = 0.2 converges, leading eigenvalue -0.150 + 0.600i,
    Hessian eigenvalues 6.835; eta = 0.6 loses stability at update 18 (crossing
    17.75) as a Hopf pair. The small run (25 updates, float64 here) gives the
    same; its eta = 0.6 pair ends at 0.0735 + 0.758i."""
    out, metrics = stability_run
    runs = metrics["runs"]
    stable, lost = runs["0.2"], runs["0.6"]
    assert stable["lost_at_update"] is None and stable["final_E_total"] < 1e-12
    assert stable["leading_end"] == pytest.approx([-0.150, 0.600], abs=1e-3)
    assert (lost["lost_at_update"], lost["kind"]) == (18, "Hopf")
    assert lost["crossing"] == pytest.approx(17.75, abs=0.01)
    assert lost["leading_end"] == pytest.approx([0.0735, 0.758], abs=2e-3)
    for key in ("hessian_min_eigenvalue_end", "hessian_max_eigenvalue_end"):
        assert metrics[key] == pytest.approx(6.835, abs=2e-3)
    assert any(r["lost_at_update"] is None for r in runs.values())
    lost = [r for r in runs.values() if r["lost_at_update"] is not None]
    assert lost and all(r["leading_end"][0] > 0 for r in lost)
    assert all(r["leading_start"][0] < 0 for r in runs.values())
    params, data = np.load(out / "params.npz"), np.load(out / "data.npz")
    W, X, Y = params["weights"], data["I"], data["T"]
    leading = np.max(np.linalg.eigvals(W - np.eye(W.shape[0])).real)
    assert leading == pytest.approx(metrics["leading_eigenvalue_end"][0], abs=1e-8)
    assert X.shape == Y.shape
    for name in ("leading_eigenvalue.png", "spectra.png"):
        assert (out / name).stat().st_size > 10_000
