"""Higher-order networks (Pineda eqs 21-27): every gradient method against finite
differences and each other at orders 1-3, the closed forms against the generic
path, the first-order special case, and the `higher-order-parity` demo."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import neurodyn as nd

from .helpers import (
    QUICK,
    Gradients,
    finite_difference_grad,
    method_names,
    quick,
    quick_relaxation,
    random_patterns,
    relative_error,
    run_demo,
)


N = 4


def random_higher_order(order, *, seed=0, inner=nd.logistic, scale=1.5):
    """An order-`order` network of 4 units: 2 input units, 2 output units (one also
    an input), weights ~ scale * N(0, 1) / sqrt(N^order)."""
    rng = np.random.default_rng(seed + order)
    weights = scale * rng.normal(size=(N,) * (order + 1)) / np.sqrt(N**order)
    output_units = np.arange(N) >= N - 2
    output_units[0] = True
    return nd.HigherOrderNetwork(
        weights,
        inner=inner,
        input_units=np.arange(N) < 2,
        output_units=output_units,
    )


def weights_loss(model, I, T):
    def loss(w):
        m = eqx.tree_at(lambda net: net.weights, model, w)
        x = nd.relax(m, I, **QUICK).x
        return 0.5 * jnp.sum(jax.vmap(m.error)(x, T) ** 2)

    return loss


# Order 2 in the default tier; orders 1 and 3 (each its own compilation and, for
# order 3, 256 finite differences) in the slow tier.
@pytest.fixture(
    scope="module",
    params=[
        pytest.param(1, marks=pytest.mark.slow),
        2,
        pytest.param(3, marks=pytest.mark.slow),
    ],
    ids=lambda n: f"order{n}",
)
def problem(request):
    net = random_higher_order(request.param)
    I, T = random_patterns(n=N, p=3)
    fd = finite_difference_grad(weights_loss(net, I, T), net.weights)
    grads = Gradients(lambda m: nd.value_and_grad(net, I, T, method=m, **quick(m)))
    return net, I, T, fd, grads


@pytest.mark.parametrize("method", method_names())
def test_matches_finite_differences(problem, method):
    net, I, T, fd, grads = problem
    _, g = grads[method]
    assert g.weights.shape == (N,) * (net.order + 1)
    # measured: 3e-11 (order 1) to 1.1e-10 (orders 2, 3), the differences' error
    assert relative_error(g.weights, fd) <= 1e-8


def test_methods_agree(problem):
    *_, grads = problem
    (E0, g0), *others = grads.values()
    for E, g in others:
        assert abs(float(E) - float(E0)) <= 1e-12
        assert relative_error(g.weights, g0.weights) <= 1e-9  # measured <= 7e-12
    assert g0.input_units is None and g0.output_units is None


@eqx.filter_jit
def closed_form_and_generic(net, x, I, T):
    """Per pattern: y* of eq 24, z* of the generic (vjp) adjoint, both relaxed from
    0, and Pineda's weight velocity (eq 23)."""

    def one(x, i, t):
        J = net.error(x, t)
        zero = jnp.zeros_like(x)
        y = quick_relaxation().solve(
            lambda y: net.error_dynamics(y, x, i, J), zero, net.tau
        )
        z = quick_relaxation().solve(
            lambda z: nd.adjoint_field(net, x, i, z, J), zero, net.tau
        )
        ok = (y.result == nd.RESULTS.successful) & (z.result == nd.RESULTS.successful)
        gprime = net.activation.derivative(net.net_input(x, i))
        return net.weight_dynamics(y.y, x, i), y.y, gprime * z.y, ok

    return jax.vmap(one)(x, I, T)


def test_closed_form_equals_generic(problem):
    """Eqs 23-26: relax y' = -y + g'(u){f'(x) V^T y + J}; then y* = g'(u) z* and
    dW/dt = eta y f(x)..f(x) summed over patterns is -dE/dW."""
    net, I, T, _, grads = problem
    x = nd.relax(net, I, **QUICK).x
    velocity, y, gprime_z, ok = closed_form_and_generic(net, x, I, T)
    assert bool(jnp.all(ok))
    assert relative_error(y, gprime_z) <= 1e-9
    _, g = grads["RecurrentBackprop"]
    assert relative_error(-jnp.sum(velocity, axis=0), g.weights) <= 1e-8
    # the generic weight velocity (a vjp of the drive) is the same outer product
    J = net.error(x[0], T[0])
    z = jnp.linalg.solve(net.stability_matrix(x[0], I[0]).T, J)
    generic = nd.parameter_cotangent(net, x[0], I[0], z)[0].weights
    y0 = net.activation.derivative(net.net_input(x[0], I[0])) * z
    assert relative_error(net.weight_dynamics(y0, x[0], I[0]), generic) <= 1e-12


def test_coupling_and_stability_matrices(problem):
    """V = du/df(x) (eqs 25, 26), L = 1 - dF/dx (eq 27); the paper's printed L with
    f' at the row index has the same eigenvalues."""
    net, I, *_ = problem
    x = nd.relax(net, I[0], **QUICK).x
    if net.order == 2:
        S = net.symmetrised_weights()
        assert jnp.allclose(S, jnp.swapaxes(S, 1, 2), rtol=0, atol=1e-14)

    def u_of_fx(fx):
        u = net.weights
        for _ in range(net.order):
            u = u @ fx
        return u

    V = net.coupling_matrix(x)
    assert relative_error(V, jax.jacfwd(u_of_fx)(net.inner(x))) <= 1e-12
    L = net.stability_matrix(x, I[0])
    jacobian = jax.jacfwd(lambda x_: net.drive(x_, I[0]))(x)
    assert relative_error(L, jnp.eye(N) - jacobian) <= 1e-12
    gprime = net.activation.derivative(net.net_input(x, I[0]))
    printed = jnp.eye(N) - (gprime * net.inner.derivative(x))[:, None] * V
    eig = np.sort_complex(np.linalg.eigvals(np.asarray(L)))
    assert np.allclose(eig, np.sort_complex(np.linalg.eigvals(printed)), atol=1e-12)
    assert np.all(eig.real > 0)  # a stable fixed point


@pytest.mark.slow
def test_first_order_identity_is_first_order_network():
    """Order 1 with f = identity is Pineda's eq 1: same drive, same gradients."""
    hon = random_higher_order(1, inner=nd.identity)
    fon = nd.FirstOrderNetwork(
        hon.weights, input_units=hon.input_units, output_units=hon.output_units
    )
    I, T = random_patterns(n=N, p=3)
    x = jnp.asarray(np.random.default_rng(3).uniform(0, 1, N))
    assert jnp.allclose(hon.drive(x, I[0]), fon.drive(x, I[0]), rtol=0, atol=1e-15)
    y = jnp.asarray(np.random.default_rng(4).normal(size=N))
    J = fon.error(x, T[0])
    assert jnp.allclose(
        hon.error_dynamics(y, x, I[0], J), fon.error_dynamics(y, x, I[0], J)
    )
    assert jnp.allclose(
        hon.weight_dynamics(y, x, I[0]), fon.weight_dynamics(y, x, I[0])
    )
    E1, g1 = nd.value_and_grad(hon, I, T, **QUICK)
    E2, g2 = nd.value_and_grad(fon, I, T, **QUICK)
    assert abs(float(E1) - float(E2)) <= 1e-14
    assert relative_error(g1.weights, g2.weights) <= 1e-12


@pytest.mark.slow
def test_train_and_analog_learning_reduce_the_error():
    net = random_higher_order(2)
    I, T = random_patterns(n=N, p=3)
    result = nd.train(net, I, T, optimizer=optax.sgd(1.0), steps=5)
    assert result.model.weights.shape == (N, N, N)
    assert result.history.E_total[-1] < result.history.E_total[0]
    run = nd.analog_learning(net, I, T, eta=0.5, t1=40.0, saveat=jnp.array([0, 40.0]))
    assert run.model.weights.shape == (2, N, N, N)
    assert run.loss[-1] < run.loss[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weights": np.zeros(4)}, "shape \\(N,\\)\\*\\(order\\+1\\)"),
        ({"weights": np.zeros((4, 4, 3))}, "got shape \\(4, 4, 3\\)"),
        ({"tau": 0.0}, "`tau` must be a positive"),
        ({"inner": "relu"}, "Unknown activation 'relu'"),
        ({"input_units": np.ones(3, bool)}, "`input_units` must have shape"),
        ({"weights": np.full((2, 2, 2), np.nan)}, "`weights` must be finite"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nd.HigherOrderNetwork(**{"weights": np.zeros((4, 4, 4)), **kwargs})


def test_activations_by_name_and_order():
    net = nd.HigherOrderNetwork(np.zeros((3,) * 4), activation="tanh", inner="sin")
    assert net.order == 3 and net.n_units == 3
    assert net.activation == nd.tanh
    assert net.inner == nd.sin


@pytest.fixture(scope="module")
def parity_run(tmp_path_factory):
    out, metrics, arrays = run_demo(tmp_path_factory, "higher-order-parity")
    return out, metrics, arrays["params"], arrays["data"]


@pytest.mark.slow
class TestParityDemo:
    """A class, so that `--dist loadscope` may run it beside the gradient tests."""

    def test_claims(self, parity_run):
        """Without hidden units (pure input units), an order-n unit computes a degree-n
        polynomial threshold of the bits: second order solves XOR, first order does
        not; 3-bit parity needs third order ("solved": every output on its target's
        side of 0.5 by >= 0.3)."""
        out, metrics, params, data = parity_run
        xor, parity = metrics["xor"], metrics["parity3"]
        assert xor["order2"]["solved"] and xor["order2"]["min_margin"] >= 0.3
        assert not xor["order1"]["solved"] and xor["order1"]["correct"] < 4
        assert parity["order3"]["solved"] and parity["order3"]["min_margin"] >= 0.3
        for order in ("order1", "order2"):
            assert not parity[order]["solved"] and parity[order]["correct"] < 8
        assert params["weights"].shape == (4, 4, 4)
        assert set(params) == {"weights", "input_units", "output_units"}
        assert data["I"].shape == data["T"].shape == (4, 4)
        assert (out / "learning_curves.png").stat().st_size > 10_000

    def test_recomputes_in_numpy(self, parity_run):
        """The run folder alone gives the second-order XOR outputs back: Euler steps of
        dx/dt = -x + g(sum_jk w_ijk x_j x_k) + I (f = identity) from x = 0.5."""
        _, metrics, params, data = parity_run
        W, I = params["weights"], np.where(params["input_units"], data["I"], 0.0)
        x = np.full_like(I, 0.5)
        for _ in range(4000):
            u = np.einsum("ijk,pj,pk->pi", W, x, x)
            x = x + 0.05 * (-x + 1 / (1 + np.exp(-u)) + I)
        assert np.allclose(x[:, -1], metrics["xor"]["order2"]["outputs"], atol=1e-3)
