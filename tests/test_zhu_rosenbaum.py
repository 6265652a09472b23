"""Zhu & Rosenbaum's rules against independent evaluations of their formulas, and
the two demos (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from threadpoolctl import threadpool_limits

import neurodyn as nd
from neurodyn._demos import zhu_rosenbaum_regression as regression

from .helpers import QUICK, relative_error, run_demo


N, P, ETA = 5, 3, 0.3


def setup(activation, seed=0):
    rng = np.random.default_rng(seed)
    W = 0.6 * rng.normal(size=(N, N)) / np.sqrt(N)
    I = rng.normal(size=(P, N))
    T = rng.uniform(-0.5, 0.5, size=(P, N))
    net = nd.RateNetwork(W, activation=activation)
    return net, W, I, T


def direction(rule, net, I, T, **kwargs):
    _, D, fp = nd.rule_direction(rule, net, I, T, **QUICK, **kwargs)
    return np.asarray(D), np.asarray(fp.x)


def gain(activation, W, r, I):
    return np.asarray(activation.derivative(jnp.asarray(W @ r + I)))


def reparameterized_step(W, r, x_gain, cotangent_loss, eta):
    r"""$\Delta W_2^a$ by autodiff: a gradient step on $A = [G - GWG]^{-1}$ of the
    linearised model $r = G A G \tilde x$ (with $\tilde x$ the input that gives the
    actual $r$), mapped back by $W = G^{-1} - G^{-1} A^{-1} G^{-1}$ with explicit
    inverses."""
    G = jnp.diag(x_gain)
    A = jnp.linalg.inv(G - G @ W @ G)
    x_tilde = jnp.linalg.solve(G @ A @ G, r)
    loss_A = lambda A_: cotangent_loss(G @ A_ @ G @ x_tilde)  # noqa: E731
    A_new = A - eta * jax.grad(loss_A)(A)
    G_inv = jnp.linalg.inv(G)
    return G_inv - G_inv @ jnp.linalg.inv(A_new) @ G_inv - W


def test_dw1_is_eq_2_6():
    activation = nd.tanh
    net, W, I, T = setup(activation)
    D, r = direction(nd.DW1(), net, I, T)
    expected = 0
    for a in range(P):
        G = np.diag(gain(activation, W, r[a], I[a]))
        grad_L = 2 * (r[a] - T[a])
        expected += G @ np.linalg.inv(np.eye(N) - G @ W).T @ np.outer(grad_L, r[a]) / P
    assert relative_error(D, expected) < 1e-10


def test_dw1_is_autodiff_of_linear_cost():
    """Linear f: D1 = grad of J(W) = 1/m ||(I - W)^-1 X - Y||^2 (eq 3.1), written
    out in NumPy: with A = (I - W)^-1 and R = A X, dJ/dW = 2/m A^T (R - Y) R^T."""
    net, W, I, T = setup(nd.identity)
    D, _ = direction(nd.DW1(), net, I, T)
    X, Y = I.T, T.T
    A = np.linalg.inv(np.eye(N) - W)
    R = A @ X
    expected = 2 / P * A.T @ (R - Y) @ R.T
    assert relative_error(D, expected) < 1e-10


@pytest.mark.parametrize("activation", [nd.logistic, nd.identity])
def test_dw2_is_a_gradient_step_on_the_reparameterisation(activation):
    net, W, I, T = setup(activation)
    D, r = direction(nd.DW2(ETA), net, I, T)
    steps, literal = 0, 0
    for a in range(P):
        g = gain(activation, W, r[a], I[a])
        y = jnp.asarray(T[a])
        steps += reparameterized_step(
            W, r[a], g, lambda r_: jnp.sum((r_ - y) ** 2), ETA
        )
        # eq 2.17 written out, with its inverses
        G, eye = np.diag(g), np.eye(N)
        bracket = (
            np.linalg.inv(eye - G @ W) @ G
            - ETA * G @ G @ np.outer(2 * (r[a] - T[a]), r[a]) @ (eye - G @ W).T @ G
        )
        literal += -np.linalg.inv(bracket) + np.linalg.inv(G) - W
    assert relative_error(-ETA * D, np.asarray(steps) / P) < 1e-9
    assert relative_error(-ETA * D, literal / P) < 1e-9


def test_pooled_dw2_is_gradient_descent_on_A():
    """Linear f, eq 3.8: one step of the delta rule on J_A(A) = 1/m ||AX - Y||^2
    (eq 3.9), mapped back by W = I - A^-1."""
    net, W, I, T = setup(nd.identity)
    D, _ = direction(nd.DW2(ETA, pooled=True), net, I, T)
    A = jnp.linalg.inv(jnp.eye(N) - W)
    X, Y = jnp.asarray(I.T), jnp.asarray(T.T)
    J_A = lambda A_: jnp.sum((A_ @ X - Y) ** 2) / P  # noqa: E731
    W_new = jnp.eye(N) - jnp.linalg.inv(A - ETA * jax.grad(J_A)(A))
    assert relative_error(-ETA * D, W_new - W) < 1e-9
    with pytest.raises(ValueError, match="linear network"):
        direction(nd.DW2(ETA, pooled=True), setup(nd.tanh)[0], I, T)


@pytest.mark.parametrize("activation", [nd.tanh])
def test_dw3_is_the_linearisation_of_dw2(activation):
    """dW3 = d(dW2)/d(eta) at eta = 0 times eta (appendix A.3), and
    dW3 = B dW1 C (eq 2.20)."""
    net, W, I, T = setup(activation)
    D3, r = direction(nd.DW3(), net, I, T)
    derivative, bdc = 0, 0
    for a in range(P):
        g = gain(activation, W, r[a], I[a])
        y = jnp.asarray(T[a])
        derivative += jax.jacfwd(
            lambda eta: reparameterized_step(
                W, r[a], g, lambda r_: jnp.sum((r_ - y) ** 2), eta
            )
        )(0.0)
        G, eye = np.diag(g), np.eye(N)
        dW1 = G @ np.linalg.inv(eye - G @ W).T @ np.outer(2 * (r[a] - T[a]), r[a])
        B = (eye - W @ G) @ (eye - W @ G).T
        C = (eye - G @ W).T @ (eye - G @ W)
        bdc += B @ dW1 @ C
    assert relative_error(-D3, np.asarray(derivative) / P) < 1e-8
    assert relative_error(D3, bdc / P) < 1e-10
    # and dW2 -> dW3 as eta -> 0, with a remainder quadratic in eta
    gaps = [
        np.linalg.norm(direction(nd.DW2(eta), net, I, T)[0] - D3)
        for eta in (1e-2, 1e-3)
    ]
    assert 5 < gaps[0] / gaps[1] < 20  # D2 - D3 = O(eta)


def test_rules_reject_other_networks():
    rng = np.random.default_rng(0)
    net = nd.FirstOrderNetwork(0.3 * rng.normal(size=(N, N)))
    with pytest.raises(ValueError, match="RateNetwork"):
        nd.rule_direction(nd.DW3(), net, rng.normal(size=(2, N)), np.zeros((2, N)))
    with pytest.raises(ValueError, match="learning_rate"):
        nd.DW2(-1.0)


@pytest.mark.parametrize(
    "activation, rule",
    [  # DW2 in the default tier; each rule compiles its own update
        pytest.param(nd.tanh, nd.DW1(), marks=pytest.mark.slow),
        (nd.tanh, nd.DW2(0.2)),
        pytest.param(nd.tanh, nd.DW3(), marks=pytest.mark.slow),
        pytest.param(nd.identity, nd.DW2(0.2, pooled=True), marks=pytest.mark.slow),
    ],
    ids=["DW1", "DW2", "DW3", "DW2-pooled"],
)
def test_train_with_rule_applies_the_rule(activation, rule):
    """`nd.train(..., rule=)` with SGD makes the rule's step on Pineda's E (1/2,
    output units, summed over patterns), and each rule a different step."""
    net, W, I, T = setup(activation)
    result = nd.train(net, I, T, optimizer=optax.sgd(0.2), steps=1, rule=rule, **QUICK)
    D, _ = direction(rule, net, I, T, loss=half_squared_error, weights=np.ones(P))
    assert relative_error((W - result.model.weights) / 0.2, D) < 1e-7
    gradient = nd.value_and_grad(net, I, T, **QUICK)[1].weights
    if isinstance(rule, nd.DW1):  # dW1 is the Euclidean gradient of E
        assert relative_error(D, gradient) < 1e-7
    else:
        assert relative_error(D, gradient) > 1e-3


def half_squared_error(r, y):
    return 0.5 * jnp.sum((r - y) ** 2)


def test_closed_form_fixed_point_is_relax():
    data = regression.regression_data(n=30, m=4)
    W = jnp.asarray(data["W_star"])
    fp = nd.relax(nd.RateNetwork(W, activation=nd.identity), data["X"].T, **QUICK)
    assert np.all(fp.converged)
    R = regression.fixed_points(W, jnp.asarray(data["X"]))
    assert relative_error(fp.x, R.T) < 1e-10


def test_eq_3_11_is_dw3_of_the_linear_model():
    """The demo's inverse-free dW3 (eq 3.11) equals `nd.DW3()` from relaxed fixed
    points wherever I - W is invertible, and stays finite where it is singular."""
    data = regression.regression_data(n=30, m=4)
    X, Y = jnp.asarray(data["X"]), jnp.asarray(data["Y"])
    W = jnp.asarray(
        data["W_star"] + 0.05 * np.random.default_rng(2).normal(size=(30, 30))
    )
    net = nd.RateNetwork(W, activation=nd.identity)
    _, D3, _ = nd.rule_direction(nd.DW3(), net, X.T, Y.T, **QUICK)
    assert relative_error(regression.linear_dw3(W, X, Y), D3) < 1e-9
    U, S, Vt = np.linalg.svd(np.eye(30) - np.asarray(W))
    singular = np.eye(30) - U @ np.diag(_zero_last(S)) @ Vt
    assert np.linalg.svd(np.eye(30) - singular, compute_uv=False)[-1] < 1e-12
    assert np.all(np.isfinite(regression.linear_dw3(jnp.asarray(singular), X, Y)))


def _zero_last(values):
    values = np.array(values)
    values[-1] = 0.0
    return values


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    out, metrics, arrays = run_demo(tmp_path_factory, "zhu-rosenbaum-regression")
    return out, metrics, arrays["data"], arrays["params"], arrays["final_weights"]


def numpy_cost(W, X, Y):
    with threadpool_limits(1):
        return np.sum((np.linalg.solve(np.eye(len(W)) - W, X) - Y) ** 2) / X.shape[1]


@pytest.mark.slow
def test_measured_stability_boundary(regression_run):
    _, metrics, *_ = regression_run
    assert abs(metrics["measured_boundary"] - 0.346) < 0.05
    assert abs(metrics["theory_boundary"] - 0.346) < 1e-3


@pytest.mark.slow
def test_regression_claims_and_numbers_recompute(regression_run):
    out, metrics, data, params, finals = regression_run
    X, Y = data["X"], data["Y"]
    assert X.shape == Y.shape == (100, 50)
    cost_W2 = numpy_cost(params["W"], X, Y)
    assert abs(cost_W2 - metrics["final_cost"]["dW2"]) <= 1e-8 * max(1, cost_W2)
    for rule in ("dW1", "dW2", "dW3"):
        for start, key in (
            ("stable", "final_cost"),
            ("unstable", "final_cost_unstable_start"),
        ):
            W = finals[f"{rule}_{start}"]
            if np.all(np.isfinite(W)):
                assert np.isclose(numpy_cost(W, X, Y), metrics[key][rule], rtol=1e-6)
    # the paper's claims: from a stable start the reparameterised rules learn
    # faster than the Euclidean gradient; from an unstable start dW2 reaches a far
    # lower cost than dW1 can; dW3 tracks dW2; the updates are nearly orthogonal
    # to the gradient.
    final, unstable = metrics["final_cost"], metrics["best_final_cost_unstable_start"]
    assert final["dW2"] < final["dW1"] and final["dW3"] < final["dW1"]
    assert unstable["dW2"] < 0.1 * unstable["dW1"]
    assert abs(final["dW3"] - final["dW2"]) < 0.05 * final["dW2"]
    angles = metrics["mean_angle_stable_start"]["dW2"]
    assert angles["theta23"] < 5 and 45 < angles["theta12"] < 90
    assert {p.name for p in out.glob("*.png")} >= {
        "landscape.png",
        "learning_curves.png",
        "angles.png",
    }


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out, metrics, arrays = run_demo(tmp_path_factory, "zhu-rosenbaum-digits")
    return out, metrics, arrays["data"], arrays["params"]


@pytest.mark.slow
def test_digits_learn_and_recompute_in_numpy(digits_run):
    """All three rules learn (test accuracy well above chance); the reported test
    accuracy of the saved network recomputes from the run folder by Euler steps of
    dr/dt = -r + tanh(W r + x) in NumPy."""
    out, metrics, data, params = digits_run
    for accuracy in metrics["test_accuracy"].values():
        assert accuracy > 0.3 > metrics["initial_test_accuracy"]
    r = np.zeros_like(data["I_test"])
    with threadpool_limits(1):  # multithreaded BLAS crawls on a busy shared CPU
        for _ in range(2000):
            r = r + 0.05 * (-r + np.tanh(r @ params["weights"].T + data["I_test"]))
    accuracy = np.mean(np.argmax(r @ data["W_out"].T, 1) == data["labels_test"])
    assert abs(accuracy - metrics["test_accuracy"][metrics["params_rule"]]) < 0.01
    assert (out / "learning_curves.png").stat().st_size > 10_000


@pytest.mark.slow
def test_regression_headline_numbers(regression_run):
    """docs/zhu_rosenbaum.md: the boundary measured at 0.334 (theory 0.346),
    rho(W*) = 0.47, starts at rho 0.73 (stable) and 1.32 (unstable); from the stable
    start (learning by dW2) theta23 < 0.3 degrees on average; from the unstable
    start dW1's rho grows to about 30 while dW2 ends at rho 4.4. Small run (150
    updates, float64): theta23 0.178, theta12 74.5 degrees (67 in the full run),
    final rho 29.1 (dW1) and 4.38 (dW2)."""
    _, metrics, *_ = regression_run
    assert metrics["measured_boundary"] == pytest.approx(0.334, abs=1e-3)
    assert metrics["spectral_radius_W_star"] == pytest.approx(0.47, abs=5e-3)
    start = metrics["initial_spectral_radius"]
    assert start["stable"] == pytest.approx(0.73, abs=5e-3)
    assert start["unstable"] == pytest.approx(1.32, abs=5e-3)
    angles = metrics["mean_angle_stable_start"]["dW2"]
    assert angles["theta23"] < 0.3
    assert angles["theta12"] == pytest.approx(74.5, abs=0.5)
    final = metrics["final_spectral_radius_unstable_start"]
    assert final["dW1"] == pytest.approx(29.1, abs=0.5)
    assert final["dW2"] == pytest.approx(4.38, abs=0.05)


@pytest.mark.slow
def test_digits_headline_numbers(digits_run):
    """docs/zhu_rosenbaum.md, the small run (N = 50, one epoch of 21 updates,
    eta = 0.3, float32): test accuracy 0.576 (dW1), 0.422 (dW2), 0.544 (dW3) from
    0.124, every relaxation settled, no rule diverged."""
    _, metrics, *_ = digits_run
    accuracy = metrics["test_accuracy"]
    expected = {"dW1_0.3": 0.576, "dW2_0.3": 0.422, "dW3_0.3": 0.544}
    assert accuracy == pytest.approx(expected, abs=0.01)
    assert metrics["initial_test_accuracy"] == pytest.approx(0.124, abs=0.01)
    assert all(f == 1.0 for f in metrics["min_settled_fraction"].values())
    assert not any(metrics["diverged"].values())
