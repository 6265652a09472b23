"""The library against references written here in plain NumPy, at tau = 2.5 (so code
that ignores tau fails): the Jacobian and its eigenvalues, RK4 trajectories checked
at every sampled time, and central finite differences with respect to the weights
and the sources (float64)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd

from .helpers import (
    METHODS,
    NETWORK_CLASSES,
    QUICK,
    quick,
    quick_relaxation,
    random_network,
    random_patterns,
    relative_error,
)


TAU = 2.5
NUMPY_G = {"logistic": lambda u: 1 / (1 + np.exp(-u)), "tanh": np.tanh}
NUMPY_G_PRIME = {
    "logistic": lambda u: np.exp(-u) / (1 + np.exp(-u)) ** 2,
    "tanh": lambda u: 1 / np.cosh(u) ** 2,
}


def numpy_parts(net):
    """W (masked), the input mask, g, g' and whether I enters inside g."""
    W = np.where(np.asarray(net.connectivity), np.asarray(net.weights), 0.0)
    mask = np.asarray(net.input_units)
    name = net.activation.name
    return W, mask, NUMPY_G[name], NUMPY_G_PRIME[name], isinstance(net, nd.RateNetwork)


def numpy_field(net):
    """x -> (-x + F(x; I))/tau for Pineda's first-order network (g(Wx) + I) or the
    rate network (g(Wx + I)), batched over patterns."""
    W, mask, g, _, inside = numpy_parts(net)

    def field(x, I):
        I = np.where(mask, I, 0.0)
        drive = g(x @ W.T + I) if inside else g(x @ W.T) + I
        return (-x + drive) / net.tau

    return field


def numpy_jacobian(net, x, I):
    """(-1 + diag g'(u) W)/tau for one pattern."""
    W, mask, _, g_prime, inside = numpy_parts(net)
    u = W @ x + (np.where(mask, I, 0.0) if inside else 0.0)
    return (-np.eye(len(x)) + g_prime(u)[:, None] * W) / net.tau


def rk4(field, y, ts, dt):
    """Classical RK4 with steps of about `dt`, landing exactly on every time in `ts`."""
    out = [y]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        n = int(np.ceil((t1 - t0) / dt))
        h = (t1 - t0) / n
        for _ in range(n):
            k1 = field(y)
            k2 = field(y + h / 2 * k1)
            k3 = field(y + h / 2 * k2)
            k4 = field(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(y)
    return np.stack(out, axis=-2)


@pytest.fixture(scope="module", params=NETWORK_CLASSES, ids=lambda c: c.__name__)
def problem(request):
    net = random_network(request.param, scale=1.5, activation=nd.tanh, tau=TAU)
    I, T = random_patterns()
    return net, I, T, nd.relax(net, I, throw=True, **QUICK)


def test_spectrum_and_linearisation_at_tau(problem):
    """Measured: 2e-16 for the Jacobian, 2e-15 for the eigenvalues (tolerances
    100x that); a spectrum that ignores tau is off by a factor 2.5."""
    net, I, _, fp = problem
    forward = np.asarray(nd.spectrum(net, fp, I))
    adjoint = np.asarray(nd.adjoint_spectrum(net, fp, I))
    L = np.asarray(nd.linearisation(net, fp, I))
    for p in range(I.shape[0]):
        reference = numpy_jacobian(net, np.asarray(fp.x[p]), np.asarray(I[p]))
        assert np.max(np.abs(L[p] - reference)) <= 2e-14
        eig = np.linalg.eigvals(reference)
        assert nd.spectral_distance(forward[p], eig) <= 2e-13
        assert nd.spectral_distance(adjoint[p], eig) <= 2e-13


def test_trajectory_is_rk4_at_every_sampled_time(problem):
    """x(t) at seven times from 0 to 20 (= 8 tau: still moving at the middle ones)
    against NumPy RK4 with dt = 0.01 (its own error ~1e-11; measured 4.5e-12)."""
    net, I, *_ = problem
    ts = np.linspace(0.0, 20.0, 7)
    xs = np.asarray(nd.trajectory(net, I, jnp.asarray(ts), rtol=1e-12, atol=1e-14))
    field = numpy_field(net)
    reference = rk4(lambda x: field(x, np.asarray(I)), np.full(I.shape, 0.5), ts, 0.01)
    assert xs.shape == reference.shape == (3, 7, 6)
    assert np.max(np.abs(xs - reference)) <= 5e-10
    # the middle samples are neither the start nor the end
    assert np.min(np.abs(reference[:, 1] - reference[:, -1])) > 1e-3


def test_adjoint_trajectory_is_rk4_at_every_sampled_time(problem):
    """z(t) of tau dz/dt = -z + A^T z + J, A = dF/dx at x*, from z = 0."""
    net, I, T, fp = problem
    ts = np.linspace(0.0, 20.0, 6)
    zs = nd.adjoint_trajectory(net, fp.x, I, T, jnp.asarray(ts), rtol=1e-12, atol=1e-14)
    for p in range(I.shape[0]):
        x = np.asarray(fp.x[p])
        L = numpy_jacobian(net, x, np.asarray(I[p]))
        J = np.where(np.asarray(net.output_units), np.asarray(T[p]) - x, 0.0)
        A_T = (L * net.tau + np.eye(len(x))).T
        reference = rk4(lambda z: (-z + A_T @ z + J) / net.tau, 0 * x, ts, 0.01)
        assert np.max(np.abs(np.asarray(zs[p]) - reference)) <= 5e-10


def numpy_fixed_point(net, I):
    """RK4 from 0.5 to t = 100 (40 tau), then Newton steps with the NumPy Jacobian
    down to round-off."""
    field = numpy_field(net)
    x = rk4(lambda x: field(x, I), np.full(I.shape, 0.5), [0.0, 100.0], 0.1)[..., -1, :]
    for _ in range(8):
        x = np.stack(
            [
                x[p]
                - np.linalg.solve(numpy_jacobian(net, x[p], I[p]), field(x[p], I[p]))
                for p in range(len(I))
            ]
        )
    return x


def numpy_error(net, I, T):
    x = numpy_fixed_point(net, I)
    return 0.5 * np.sum(np.where(np.asarray(net.output_units), T - x, 0.0) ** 2)


def numpy_gradients(net, I, T, eps=1e-6):
    """Central differences of E in NumPy over every present weight and every
    source entry of an input unit."""
    I, T = np.asarray(I), np.asarray(T)
    W = np.asarray(net.weights)
    grad_W = np.zeros_like(W)
    for i, j in zip(*np.nonzero(np.asarray(net.connectivity))):
        step = np.zeros_like(W)
        step[i, j] = eps
        plus = numpy_error(_with_weights(net, W + step), I, T)
        minus = numpy_error(_with_weights(net, W - step), I, T)
        grad_W[i, j] = (plus - minus) / (2 * eps)
    grad_I = np.zeros_like(I)
    for a, k in zip(*np.nonzero(np.broadcast_to(np.asarray(net.input_units), I.shape))):
        step = np.zeros_like(I)
        step[a, k] = eps
        grad_I[a, k] = (
            numpy_error(net, I + step, T) - numpy_error(net, I - step, T)
        ) / (2 * eps)
    return grad_W, grad_I


def _with_weights(net, W):
    return type(net)(
        W,
        activation=net.activation,
        input_units=net.input_units,
        output_units=net.output_units,
        connectivity=net.connectivity,
        tau=net.tau,
    )


SLOW = pytest.mark.slow


@pytest.fixture(scope="module")
def finite_differences(problem):
    net, I, T, _ = problem
    return numpy_gradients(net, I, T)


# RecurrentBackprop against NumPy in the default tier; ImplicitDiff and UnrolledBPTT
# in the slow tier (test_gradients checks both against finite differences of the
# library's own relaxation in the default tier).
@pytest.mark.parametrize(
    "method",
    [
        m if isinstance(m, nd.RecurrentBackprop) else pytest.param(m, marks=SLOW)
        for m in METHODS
    ],
    ids=lambda m: type(m).__name__,
)
def test_gradients_match_numpy_finite_differences(problem, finite_differences, method):
    """dE/dW from `value_and_grad` and dE/dI through `method.fixed_point`, against
    NumPy central differences (measured: 2.6e-10 relative, the differences' own
    error; E to 6e-12, the tight relaxation's)."""
    net, I, T, _ = problem
    fd_W, fd_I = finite_differences
    E, grads = nd.value_and_grad(net, I, T, method=method, **quick(method))
    assert abs(float(E) - numpy_error(net, np.asarray(I), np.asarray(T))) <= 6e-10
    assert relative_error(grads.weights, fd_W) <= 3e-8

    def loss(I_):
        x = method.fixed_point(
            net, I_, jnp.full(I.shape, 0.5), quick_relaxation(method)
        ).x
        return 0.5 * jnp.sum(jax.vmap(net.error)(x, T) ** 2)

    assert relative_error(jax.grad(loss)(I), fd_I) <= 3e-8


def test_forward_and_learning_fields_are_the_numpy_equations(problem):
    """`forward_field` is (-x + F(x))/tau; `learning_field` stacks, per pattern,
    that field, the adjoint field (-z + A^T z + J)/tau, and the weight velocity
    eta sum_a (dF/dW)^T z_a (no 1/tau), at a state away from any fixed point."""
    net, I, T, _ = problem
    rng = np.random.default_rng(7)
    x, z = jnp.asarray(rng.uniform(-1, 1, size=(2, *I.shape)))
    field = numpy_field(net)
    np.testing.assert_allclose(
        nd.forward_field(net, x[0], I[0]),
        field(np.asarray(x[0]), np.asarray(I[0])),
        rtol=0,
        atol=1e-15,
    )
    params, static = eqx.partition(net, eqx.is_inexact_array)
    eta = 0.3
    dx, dz, dparams = nd.learning_field(0.0, (x, z, params), (static, I, T, eta))
    W, mask, _, g_prime, inside = numpy_parts(net)
    xn, zn, In, Tn = (np.asarray(a) for a in (x, z, I, T))
    expected_dW = np.zeros_like(W)
    for a in range(len(In)):
        u = W @ xn[a] + (np.where(mask, In[a], 0.0) if inside else 0.0)
        y = g_prime(u) * zn[a]
        J = np.where(np.asarray(net.output_units), Tn[a] - xn[a], 0.0)
        np.testing.assert_allclose(dz[a], (-zn[a] + W.T @ y + J) / TAU, atol=1e-14)
        expected_dW += eta * np.outer(y, xn[a])
    np.testing.assert_allclose(dx, field(xn, In), atol=1e-15)
    expected_dW = np.where(np.asarray(net.connectivity), expected_dW, 0.0)
    np.testing.assert_allclose(
        np.where(np.asarray(net.connectivity), dparams.weights, 0.0),
        expected_dW,
        atol=1e-14,
    )


def test_pattern_sharding_splits_the_pattern_axis():
    sharding = nd.pattern_sharding()
    assert sharding.mesh.axis_names == ("patterns",)
    assert tuple(sharding.spec) == ("patterns",)
    assert list(sharding.mesh.devices) == jax.devices()
    with pytest.raises(ValueError, match="at least one device"):
        nd.pattern_sharding([])
