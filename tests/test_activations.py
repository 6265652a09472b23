"""Activations against NumPy: each built-in's value and written-out derivative, and
a user-built `nd.Activation` carried through a network's error dynamics and
gradients."""

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd

from .helpers import QUICK, finite_difference_grad, relative_error, weights_loss


U = np.linspace(-4.0, 4.0, 41)
REFERENCES = {
    "logistic": (
        lambda u: 1 / (1 + np.exp(-u)),
        lambda u: np.exp(-u) / (1 + np.exp(-u)) ** 2,
    ),
    "tanh": (np.tanh, lambda u: 1 / np.cosh(u) ** 2),
    "sin": (np.sin, np.cos),
    "softplus": (lambda u: np.log1p(np.exp(u)), lambda u: 1 / (1 + np.exp(-u))),
    "identity": (lambda u: u, np.ones_like),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_builtin_activation_and_derivative(name):
    """Measured: round-off (<= 4e-16); the derivative is also the central difference
    of the NumPy function (step 1e-6, error ~1e-10)."""
    activation = nd.activation_by_name(name)
    fn, derivative = REFERENCES[name]
    assert activation.name == name and activation == getattr(nd, name)
    np.testing.assert_allclose(activation(U), fn(U), rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        activation.derivative(jnp.asarray(U)), derivative(U), atol=1e-14
    )
    central = (fn(U + 1e-6) - fn(U - 1e-6)) / 2e-6
    np.testing.assert_allclose(
        activation.derivative(jnp.asarray(U)), central, atol=1e-8
    )


def test_user_built_activation_drives_a_network():
    """g = arctan with g' = 1/(1 + u^2), built by the user: the drive, Pineda's
    closed-form error dynamics (eq 17) and the default gradient method use both
    (the other methods share its path from the drive on; test_gradients.py)."""
    arctan = nd.Activation("arctan", jnp.arctan, lambda u: 1 / (1 + u**2))
    assert arctan == nd.Activation("arctan", jnp.arctan, jnp.cos)  # compared by name
    rng = np.random.default_rng(0)
    W = 0.8 * rng.normal(size=(4, 4)) / 2
    net = nd.FirstOrderNetwork(W, activation=arctan, output_units=np.arange(4) >= 2)
    x, I, y, J = (jnp.asarray(rng.normal(size=4)) for _ in range(4))
    np.testing.assert_allclose(net.drive(x, I), np.arctan(W @ x) + I, atol=1e-15)
    expected = -y + (W.T @ y + J) / (1 + (W @ x) ** 2)  # -y + g'(u)(W^T y + J)
    np.testing.assert_allclose(net.error_dynamics(y, x, I, J), expected, atol=1e-15)
    I, T = jnp.asarray(rng.uniform(-1, 1, size=(2, 3, 4)))
    fd = finite_difference_grad(weights_loss(net, I, T, **QUICK), net.weights)
    _, grads = nd.value_and_grad(net, I, T, **QUICK)
    assert relative_error(grads.weights, fd) <= 1e-7
    with pytest.raises(ValueError, match="Unknown activation 'arctan'"):
        nd.activation_by_name("arctan")
