"""Implicit recurrent layers: exact gradients (every method against finite
differences and the paper's closed forms), the semi-gradient against its documented
formula and bound, input checks, the renamed bias, and the two demos' run folders in
plain NumPy."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import neurodyn as nd
from neurodyn._learning.checkpoint import load_checkpoint, save_checkpoint

from .helpers import (
    QUICK,
    TIGHT,
    Gradients,
    method_names,
    quick,
    relative_error,
    run_demo,
)


def with_recurrence(net, scale, seed):
    """`net` with random lateral and feedback weights of the given scale."""
    rng = np.random.default_rng(seed)

    def recurrent(n):
        return [ly.W for ly in n.layers] + [n.feedback[k] for k in range(n_feedback)]

    n_feedback = len(net.feedback)
    values = [jnp.asarray(scale * rng.normal(size=w.shape)) for w in recurrent(net)]
    return eqx.tree_at(recurrent, net, values)


def patterns(net, p=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(p, net.n_inputs))
    n_out = int(np.sum(np.asarray(net.output_units)))
    I = net.source(X)
    return I, net.targets(rng.uniform(-0.5, 0.5, size=(p, n_out)))


def flat_grads(grads):
    return ravel_pytree(eqx.filter(grads, eqx.is_inexact_array))[0]


def fixed_points(net, I):
    return nd.relax(net, I, x0=I, throw=True, **QUICK).x


@pytest.fixture(scope="module")
def two_layers():
    """Layers of 4 and 2 tanh units on 3 inputs, lateral W in both, feedback R from
    the output layer to the hidden one."""
    net = nd.implicit_network(
        3, [4, 2], key=jax.random.key(0), feedback=[(1, 0)], activation="tanh"
    )
    net = with_recurrence(net, 0.4, seed=0)
    I, T = patterns(net)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)

    def loss(theta):
        model = eqx.combine(unravel(theta), static)
        x = fixed_points(model, I)
        return 0.5 * jnp.sum(jax.vmap(model.error)(x, T) ** 2)

    eps = 1e-5
    basis = jnp.eye(flat.size, dtype=flat.dtype)
    fd = (
        jax.vmap(loss)(flat[None] + eps * basis)
        - jax.vmap(loss)(flat[None] - eps * basis)
    ) / (2 * eps)
    grads = Gradients(
        lambda m: nd.value_and_grad(net, I, T, method=m, x0=I, **quick(m))[1]
    )
    return net, I, T, fd, grads


@pytest.fixture(scope="module")
def one_layer():
    """One layer of 4 logistic units on 3 inputs; units 0 and 2 carry targets."""
    net = nd.implicit_network(
        3,
        [4],
        key=jax.random.key(1),
        output_units=np.array([True, False, True, False]),
    )
    net = with_recurrence(net, 0.5, seed=2)
    I, T = patterns(net)
    return net, I, T, fixed_points(net, I)


@pytest.mark.parametrize("method", method_names())
def test_exact_gradient_matches_finite_differences(two_layers, method):
    *_, fd, grads = two_layers
    assert relative_error(flat_grads(grads[method]), fd) <= 1e-6


def layer_terms(net, I, x):
    """Per pattern: input X, layer activities Y^l and f'(net input) of each layer."""
    X = I[:, : net.n_inputs]
    Y = net.layer_activities(x)
    u = jax.vmap(net.net_inputs)(x, I)
    return X, Y, [net.activation.derivative(v) for v in u]


def test_one_layer_closed_form(one_layer):
    r"""Paper eqs 4-6: dY/dW = (1 - f'.W)^-1 f'.delta_Y, so dE/dW = r Y^T with
    r = f' (1 - W^T diag f')^-1 dE/dY; dE/dQ = r X^T, dE/db = r (b the bias)."""
    net, I, T, x = one_layer
    _, grads = nd.value_and_grad(net, I, T, method=nd.ImplicitDiff(), x0=I, **QUICK)
    X, (Y,), (D,) = layer_terms(net, I, x)
    e = -jax.vmap(net.error)(x, T)[:, net.n_inputs :]  # dE/dY
    W = net.layers[0].W
    r = jnp.stack(
        [
            D[a] * jnp.linalg.solve(jnp.eye(4) - W.T * D[a][None, :], e[a])
            for a in range(len(I))
        ]
    )
    layer = grads.layers[0]
    assert relative_error(layer.W, r.T @ Y) <= 1e-10
    assert relative_error(layer.Q, r.T @ X) <= 1e-10
    assert relative_error(layer.bias, r.sum(0)) <= 1e-10


def test_two_layer_closed_form(two_layers):
    r"""Paper appendix B: J_{W^{l1}} = S f'_{l1} delta with
    S = (1 - f'_{l1} W^{l1} - f'_{l1} Q^{l1} (1 - f'_{l2} W^{l2})^{-1} f'_{l2} R)^-1,
    layer l1 the output (our layer 1), l2 the hidden one (our layer 0)."""
    net, I, T, _, grads = two_layers
    x = fixed_points(net, I)
    _, (Y0, Y1), (D0, D1) = layer_terms(net, I, x)
    hidden, out = net.layers
    (R,) = net.feedback
    gW1 = 0
    for a in range(len(I)):
        inner = jnp.linalg.solve(
            jnp.eye(4) - D0[a][:, None] * hidden.W, D0[a][:, None] * R
        )
        S = jnp.linalg.inv(
            jnp.eye(2) - D1[a][:, None] * out.W - D1[a][:, None] * (out.Q @ inner)
        )
        e1 = Y1[a] - net.outputs(T[a])
        gW1 = gW1 + jnp.outer(D1[a] * (S.T @ e1), Y1[a])
    assert relative_error(grads["ImplicitDiff"].layers[1].W, gW1) <= 1e-10


def test_semi_gradient_one_layer_formula(one_layer):
    r"""Semi-gradient: dY/dW ~ f'.delta_Y, i.e. r = f' dE/dY; units without a target
    learn nothing."""
    net, I, T, x = one_layer
    _, grads = nd.value_and_grad(net, I, T, method=nd.SemiGradient(), x0=I, **QUICK)
    X, (Y,), (D,) = layer_terms(net, I, x)
    r = D * -jax.vmap(net.error)(x, T)[:, net.n_inputs :]
    layer = grads.layers[0]
    assert relative_error(layer.W, r.T @ Y) <= 1e-12
    assert relative_error(layer.Q, r.T @ X) <= 1e-12
    assert relative_error(layer.bias, r.sum(0)) <= 1e-12
    assert np.all(np.asarray(layer.Q)[[1, 3]] == 0)


def test_semi_gradient_through_layers_formula(two_layers):
    """With `feedforward=net.feedforward_connections`: ordinary backpropagation
    through Q^1, lateral and feedback inputs frozen at the equilibrium."""
    net, I, T, *_ = two_layers
    method = nd.SemiGradient(net.feedforward_connections)
    _, grads = nd.value_and_grad(net, I, T, method=method, x0=I, **QUICK)
    x = fixed_points(net, I)
    X, (Y0, Y1), (D0, D1) = layer_terms(net, I, x)
    d1 = D1 * (Y1 - net.outputs(T))
    d0 = D0 * (d1 @ net.layers[1].Q)
    expected = {
        "W1": d1.T @ Y1,
        "Q1": d1.T @ Y0,
        "b1": d1.sum(0),
        "W0": d0.T @ Y0,
        "Q0": d0.T @ X,
        "b0": d0.sum(0),
        "R": d0.T @ Y1,
    }
    got = {
        "W1": grads.layers[1].W,
        "Q1": grads.layers[1].Q,
        "b1": grads.layers[1].bias,
        "W0": grads.layers[0].W,
        "Q0": grads.layers[0].Q,
        "b0": grads.layers[0].bias,
        "R": grads.feedback[0],
    }
    for name, value in expected.items():
        assert relative_error(got[name], value) <= 1e-12, name


def test_semi_gradient_is_exact_without_recurrence(two_layers):
    """W = R = 0 (the paper's initialisation): nothing is truncated."""
    net, I, T, *_ = two_layers
    net = with_recurrence(net, 0.0, seed=0)
    exact = nd.value_and_grad(net, I, T, method=nd.ImplicitDiff(), x0=I, **QUICK)[1]
    semi = nd.value_and_grad(
        net,
        I,
        T,
        method=nd.SemiGradient(net.feedforward_connections),
        x0=I,
        relaxation=nd.Relaxation(**TIGHT),
    )[1]
    assert relative_error(flat_grads(semi), flat_grads(exact)) <= 1e-12


def test_semi_gradient_within_documented_bound(one_layer):
    """|z - z_semi| <= |A| / (1 - |A|) |source| (spectral norms), A = dF/dx."""
    net, I, T, x = one_layer
    for a in range(len(I)):
        source = -net.error(x[a], T[a])
        A = jax.jacfwd(lambda x_: net.drive(x_, I[a]))(x[a])
        norm = float(jnp.linalg.norm(A, 2))
        assert norm < 1
        z, _ = nd.ImplicitDiff().solve_adjoint(net, x[a], I[a], source, None)
        z_semi, result = nd.SemiGradient().solve_adjoint(net, x[a], I[a], source, None)
        assert result == nd.RESULTS.successful
        gap = float(jnp.linalg.norm(z - z_semi))
        assert 0 < gap <= norm / (1 - norm) * float(jnp.linalg.norm(source))


def test_renamed_bias_and_effective_weights(two_layers):
    """`ImplicitLayer.T` is now `bias` (in neurodyn `T` names targets) and
    `effective_W` `effective_weights`; the old names, and the keyword `T=`, still
    work for one release, with a warning that says what to write."""
    layer = two_layers[0].layers[0]
    with pytest.warns(DeprecationWarning, match="`ImplicitLayer.T` is deprecated; "):
        assert layer.T is layer.bias
    renamed = "`ImplicitLayer.effective_W` is deprecated; write `ImplicitLayer.eff"
    with pytest.warns(DeprecationWarning, match=renamed):
        old = layer.effective_W
    assert np.array_equal(old, layer.effective_weights)
    renamed = r"`ImplicitLayer\(T=...\)` is deprecated; write `ImplicitLayer\(bias="
    with pytest.warns(DeprecationWarning, match=renamed):
        again = nd.ImplicitLayer(layer.Q, T=layer.bias, W=layer.W)
    assert eqx.tree_equal(again, layer)
    with pytest.raises(TypeError, match="got `bias` and its old name `T`"):
        nd.ImplicitLayer(layer.Q, layer.bias, T=layer.bias)
    with pytest.raises(TypeError, match="unexpected keyword argument 'b'"):
        nd.ImplicitLayer(layer.Q, b=layer.bias)
    with pytest.raises(TypeError, match="missing required argument: `bias`"):
        nd.ImplicitLayer(layer.Q)


def test_a_checkpoint_from_before_the_bias_rename_resumes(tmp_path):
    """A checkpoint whose layout names the bias `T` (written before the rename)
    loads into today's network; its arrays are laid out the same."""
    net = nd.implicit_network(2, [3, 1], key=jax.random.key(0))
    state = eqx.filter(net, eqx.is_inexact_array)
    save_checkpoint(tmp_path, 1, state, {}, "run")
    manifest = json.loads((tmp_path / "run-1.json").read_text())
    old = [[path.replace(".bias", ".T"), *rest] for path, *rest in manifest["layout"]]
    assert [p for p, *_ in old if p.endswith(".T")] == [
        ".layers[0].T",
        ".layers[1].T",
    ]
    (tmp_path / "run-1.json").write_text(json.dumps({**manifest, "layout": old}))
    step, loaded, _ = load_checkpoint(tmp_path, state, "run")
    assert step == 1 and eqx.tree_equal(loaded, state)


def test_input_checks(two_layers):
    net = two_layers[0]
    layer = net.layers[0]
    with pytest.raises(ValueError, match="`bias` must have shape \\(4,\\)"):
        nd.ImplicitLayer(layer.Q, jnp.zeros(3))
    with pytest.raises(ValueError, match="`W` must be finite"):
        nd.ImplicitLayer(layer.Q, layer.bias, jnp.full((4, 4), jnp.nan))
    with pytest.raises(ValueError, match="Layer 1 reads 3 values"):
        nd.ImplicitRecurrentNetwork(
            [layer, nd.ImplicitLayer(jnp.ones((2, 3)), jnp.zeros(2))]
        )
    with pytest.raises(ValueError, match="from a later layer to an earlier one"):
        nd.ImplicitRecurrentNetwork(net.layers, {(0, 1): jnp.zeros((2, 4))})
    with pytest.raises(ValueError, match="`output_units` must be a boolean mask"):
        nd.ImplicitRecurrentNetwork(net.layers, output_units=np.array([0, 1]))
    with pytest.raises(ValueError, match="`X` must have shape \\(3,\\)"):
        net.source(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="`Y` must be finite"):
        net.targets(jnp.array([0.0, jnp.inf]))
    with pytest.raises(ValueError, match="square boolean mask"):
        nd.SemiGradient(jnp.ones((3, 3)))


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    return run_demo(tmp_path_factory, "implicit-xor")


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    return run_demo(tmp_path_factory, "implicit-pendulum")


NUMPY_ACTIVATIONS = {"logistic": lambda u: 1 / (1 + np.exp(-u)), "tanh": np.tanh}


def numpy_relax(blocks, f, steps=3000, dt=0.1):
    """Euler steps of dY^l/dt = -Y^l + f(net input of layer l) from Y = 0, where
    `blocks(Y)` returns every layer's net input."""
    Y = [np.zeros_like(u) for u in blocks(None)]
    for _ in range(steps):
        Y = [y + dt * (-y + f(u)) for y, u in zip(Y, blocks(Y))]
    return Y


@pytest.mark.slow
def test_implicit_xor_recomputes_in_numpy(xor_run):
    """One recurrent layer of two neurons solves XOR (a feed-forward one cannot);
    the run folder alone gives the outputs back."""
    out, metrics, arrays = xor_run
    p, d = arrays["params"], arrays["data"]
    assert p["W"].shape == (2, 2) and p["Q"].shape == (2, 2) and p["bias"].shape == (2,)
    assert d["X"].shape == (4, 2) and d["Y"].shape == (4,)
    X = d["X"]

    def blocks(Y):
        Y0 = np.zeros((4, 2)) if Y is None else Y[0]
        return [Y0 @ p["W"].T + X @ p["Q"].T + p["bias"]]

    (Y,) = numpy_relax(blocks, NUMPY_ACTIVATIONS[metrics["activation"]])
    y = Y[:, metrics["output_units"][0]]
    assert np.allclose(y, metrics["outputs"], atol=1e-4)
    assert np.all((y > 0.5) == (d["Y"] > 0.5))
    # docs/implicit_layers.md: exact gradient solves XOR whichever solver relaxes
    # the layer, the feed-forward layer never does, nor does the semi-gradient with
    # neuron 1 free (it gets no error signal)
    rates = metrics["success_rate"]
    assert set(rates) == {
        "recurrent",
        "recurrent_rk4",
        "feedforward",
        "semi_gradient",
        "semi_gradient_nor",
    }
    assert rates["recurrent"] == rates["recurrent_rk4"] == 1.0
    assert rates["feedforward"] == rates["semi_gradient"] == 0.0
    assert (out / "implicit_xor.png").stat().st_size > 10_000


@pytest.mark.slow
def test_implicit_pendulum_recomputes_in_numpy(pendulum_run):
    out, metrics, arrays = pendulum_run
    p, d = arrays["params"], arrays["data"]
    X = d["X_test"]

    def blocks(Y):
        Y0, Y1 = (np.zeros((len(X), 5)), np.zeros((len(X), 2))) if Y is None else Y
        return [
            Y0 @ p["W0"].T + X @ p["Q0"].T + Y1 @ p["R10"].T + p["bias0"],
            Y1 @ p["W1"].T + Y0 @ p["Q1"].T + p["bias1"],
        ]

    _, Y1 = numpy_relax(blocks, NUMPY_ACTIVATIONS[metrics["activation"]])
    mse = float(np.mean((Y1 - d["Y_test"]) ** 2))
    assert abs(mse - metrics["params_test_mse"]) <= 1e-4 * mse
    n = metrics["n_parameters"]
    assert n["recurrent"] == n["feedforward"] == n["semi_gradient"]
    for name, initial in metrics["initial_test_mse"].items():
        assert np.all(np.asarray(metrics["final_test_mse"][name]) < initial)
    assert (out / "implicit_pendulum.png").stat().st_size > 10_000


@pytest.mark.slow
def test_implicit_xor_headline_numbers(xor_run):
    """docs/implicit_layers.md's table on the small run (1 seed, 400 updates,
    float64): the exact gradient solves XOR with either solver (E_total 1.28e-3,
    the two within 3.4e-9 of each other), the feed-forward layer stalls at
    E = 0.32, the semi-gradient fails with neuron 1 free and solves XOR with
    neuron 1 trained to NOR; no relaxation failed. The free neuron of the solved
    network learns a gate true (or false) on exactly one pattern."""
    _, metrics, _ = xor_run
    rates = metrics["success_rate"]
    assert rates == {
        "recurrent": 1.0,
        "recurrent_rk4": 1.0,
        "feedforward": 0.0,
        "semi_gradient": 0.0,
        "semi_gradient_nor": 1.0,
    }
    assert metrics["not_converged"] == dict.fromkeys(rates, 0)
    E = {variant: runs[0] for variant, runs in metrics["final_E_total"].items()}
    assert E["recurrent"] == pytest.approx(1.28e-3, rel=5e-3)
    assert E["recurrent_rk4"] == pytest.approx(E["recurrent"], abs=1e-7)
    assert E["feedforward"] == pytest.approx(0.32, abs=1e-3)
    assert len(metrics["neuron_1_gates"]) == 1
    assert np.sum(np.asarray(metrics["neuron_1"]) > 0.5) in (1, 3)
