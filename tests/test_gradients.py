"""Every gradient method against finite differences, each other and Pineda's closed
form (float64, random networks with masks, sparse connectivity, a pattern batch)."""

import diffrax
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import neurodyn as nd

from .helpers import (
    METHODS,
    QUICK,
    TIGHT,
    finite_difference_grad,
    quick,
    quick_relaxation,
    random_network,
    random_patterns,
    relative_error,
    weights_loss,
)


# The rate network's gradients against finite differences and each other: in the
# slow tier (test_oracles.py checks them against NumPy in the default tier).
@pytest.fixture(
    scope="module",
    params=[
        nd.FirstOrderNetwork,
        pytest.param(nd.RateNetwork, marks=pytest.mark.slow),
    ],
    ids=lambda c: c.__name__,
)
def problem(request):
    net = random_network(request.param)
    I, T = random_patterns()
    fd = finite_difference_grad(weights_loss(net, I, T, **QUICK), net.weights)
    grads = {
        type(m).__name__: nd.value_and_grad(net, I, T, method=m, **quick(m))
        for m in METHODS
    }
    return net, I, T, fd, grads


@pytest.mark.parametrize("method", [type(m).__name__ for m in METHODS])
def test_matches_finite_differences(problem, method):
    net, I, T, fd, grads = problem
    _, g = grads[method]
    assert relative_error(g.weights, fd) <= 1e-6


def test_methods_agree(problem):
    *_, grads = problem
    values = list(grads.values())
    for E, g in values[1:]:
        assert abs(float(E) - float(values[0][0])) <= 1e-12
        assert relative_error(g.weights, values[0][1].weights) <= 1e-6


def test_masks_give_no_gradient(problem):
    net, *_, grads = problem
    for _, g in grads.values():
        assert np.all(np.asarray(g.weights)[~np.asarray(net.connectivity)] == 0)
        assert g.input_units is None and g.output_units is None
        assert g.connectivity is None


def test_closed_form_equals_generic(problem):
    """Pineda eqs 13-17: relax y' = -y + g'(u)(W^T y + J) and dW/dt = eta y x^T."""
    net, I, T, _, grads = problem
    x = nd.relax(net, I, **QUICK).x

    def pineda_velocity(x, i, t):
        J = net.error(x, t)
        out = quick_relaxation().solve(
            lambda y: net.error_dynamics(y, x, i, J), jnp.zeros_like(x), net.tau
        )
        assert out.result == nd.RESULTS.successful
        return net.weight_dynamics(out.y, x, i)

    velocity = sum(pineda_velocity(x[a], I[a], T[a]) for a in range(len(I)))
    _, g = grads["RecurrentBackprop"]
    assert relative_error(-velocity, g.weights) <= 1e-8


def test_closed_form_error_signal_is_gprime_times_adjoint(problem):
    """y* = g'(u) * z*, with z* the generic adjoint fixed point."""
    net, I, T, *_ = problem
    x = nd.relax(net, I[0], **QUICK).x
    J = net.error(x, T[0])
    zero = jnp.zeros_like(x)
    z = (
        quick_relaxation()
        .solve(lambda z: nd.adjoint_field(net, x, I[0], z, J), zero, net.tau)
        .y
    )
    y = (
        quick_relaxation()
        .solve(lambda y: net.error_dynamics(y, x, I[0], J), zero, net.tau)
        .y
    )
    gprime = net.activation.derivative(net.net_input(x, I[0]))
    assert relative_error(y, gprime * z) <= 1e-9


def test_single_pattern_and_batch_sum():
    net = random_network(nd.FirstOrderNetwork)
    I, T = random_patterns()
    E, g = nd.value_and_grad(net, I, T, **QUICK)
    singles = [nd.value_and_grad(net, I[a], T[a], **QUICK) for a in range(len(I))]
    assert abs(float(E) - sum(float(e) for e, _ in singles)) <= 1e-12
    assert relative_error(g.weights, sum(s.weights for _, s in singles)) <= 1e-10


def test_gmres_adjoint():
    net = random_network(nd.FirstOrderNetwork)
    I, T = random_patterns()
    _, ref = nd.value_and_grad(net, I, T, method=nd.ImplicitDiff(), **QUICK)
    gmres = nd.ImplicitDiff(lx.GMRES(rtol=1e-12, atol=1e-14))
    _, g = nd.value_and_grad(net, I, T, method=gmres, **QUICK)
    assert relative_error(g.weights, ref.weights) <= 1e-8


@pytest.mark.slow  # compiles diffrax's implicit Kvaerno5 under the adjoint
def test_stiff_solver_gradient():
    net = random_network(nd.FirstOrderNetwork)
    I, T = random_patterns()
    _, ref = nd.value_and_grad(net, I, T, method=nd.ImplicitDiff(), **QUICK)
    _, g = nd.value_and_grad(
        net, I, T, relaxation=nd.Relaxation(diffrax.Kvaerno5(), **TIGHT)
    )
    assert relative_error(g.weights, ref.weights) <= 1e-6


def test_under_jit_and_vmap():
    net = random_network(nd.FirstOrderNetwork)
    I, T = random_patterns()
    E, g = nd.value_and_grad(net, I, T, **QUICK)
    E_jit, g_jit = jax.jit(lambda n: nd.value_and_grad(n, I, T, **QUICK))(net)
    assert relative_error(g_jit.weights, g.weights) <= 1e-12
    per_pattern = jax.vmap(lambda i, t: nd.value_and_grad(net, i, t, **QUICK)[0])(I, T)
    assert abs(float(jnp.sum(per_pattern)) - float(E)) <= 1e-12


def test_any_loss_of_the_fixed_point_is_differentiable():
    """The adjoint methods define a VJP of x*(W, I), so jax.grad works on any loss,
    including with respect to the input."""
    net = random_network(nd.RateNetwork)
    I, _ = random_patterns()
    x0 = jnp.full(net.n_units, 0.5)

    def loss(i, method):
        return jnp.sum(
            jnp.sin(method.fixed_point(net, i, x0, quick_relaxation(method)).x)
        )

    # UnrolledBPTT's derivative with respect to I: test_oracles.py (slow tier).
    grads = [jax.grad(loss)(jnp.asarray(I[0]), m) for m in METHODS[:2]]
    for g in grads[1:]:
        assert relative_error(g, grads[0]) <= 1e-6
    assert np.all(np.asarray(grads[0])[~np.asarray(net.input_units)] == 0)


def test_methods_agree_to_their_measured_precision(problem):
    """Measured (both network classes): every method within 7.8e-11 of the central
    differences (step 1e-5, their own error) and within 5.0e-12 of
    RecurrentBackprop; the tolerances are about 100x those."""
    *_, fd, grads = problem
    (E0, g0), *others = grads.values()
    errors = [relative_error(g.weights, fd) for _, g in grads.values()]
    assert max(errors) <= 1e-8, errors
    gaps = [relative_error(g.weights, g0.weights) for _, g in others]
    assert max(gaps) <= 5e-10, gaps


def test_rate_network_closed_forms_are_the_numpy_equations():
    """The rate network g(Wx + I): y' = -y + g'(u)(W^T y + J) and
    dW/dt = y x^T with u = Wx + I, at random states (the relaxed closed forms
    against the generic adjoint: the slow tier's RateNetwork parameter above)."""
    net = random_network(nd.RateNetwork)
    rng = np.random.default_rng(4)
    x, i, y, J = (jnp.asarray(rng.normal(size=net.n_units)) for _ in range(4))
    W = np.where(np.asarray(net.connectivity), np.asarray(net.weights), 0.0)
    u = W @ x + np.where(np.asarray(net.input_units), i, 0.0)
    s = 1 / (1 + np.exp(-u))
    expected = -y + s * (1 - s) * (W.T @ y + J)
    np.testing.assert_allclose(net.error_dynamics(y, x, i, J), expected, atol=1e-14)
    velocity = np.where(np.asarray(net.connectivity), np.outer(y, x), 0.0)
    np.testing.assert_allclose(
        np.where(np.asarray(net.connectivity), net.weight_dynamics(y, x, i), 0.0),
        velocity,
        atol=1e-15,
    )
