"""Bad input raises at call time, naming the argument, what it got and what it wants."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd


N = 4


def _net(**kwargs):
    return nd.FirstOrderNetwork(np.zeros((N, N)), **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(weights=np.zeros((3, 4))),
            r"`weights` must be a square \(N, N\).*\(3, 4\)",
        ),
        (dict(weights=np.zeros(4)), r"`weights` must be a square.*\(4,\)"),
        (
            dict(weights=np.full((2, 2), np.nan)),
            r"`weights` must be finite.*4 of its 4",
        ),
        (dict(weights=np.eye(2, dtype=bool)), r"`weights` must be real-valued.*bool"),
        (
            dict(input_units=np.ones(3, bool)),
            r"`input_units` must have shape \(4,\).*\(3,\)",
        ),
        (dict(output_units=np.array([0, 1])), r"`output_units` must be.*int"),
        (
            dict(connectivity=np.ones((4, 3), bool)),
            r"`connectivity` must be a boolean.*\(4, 3\)",
        ),
        (
            dict(connectivity=np.ones((4, 4))),
            r"`connectivity` must be a boolean.*float",
        ),
        (dict(tau=0.0), r"`tau` must be a positive.*0.0"),
        (dict(tau=-1.0), r"`tau` must be a positive.*-1.0"),
        (dict(activation="relu"), r"Unknown activation 'relu'; expected one of"),
    ],
)
def test_network_arguments(kwargs, message):
    kwargs = {"weights": np.zeros((N, N)), **kwargs}
    with pytest.raises(ValueError, match=message):
        nd.FirstOrderNetwork(**kwargs)


@pytest.mark.parametrize(
    "I, T, message",
    [
        (np.zeros(3), np.zeros(4), r"`I` must have shape \(4,\) or \(P, 4\).*\(3,\)"),
        (np.zeros((2, 2, 4)), np.zeros(4), r"`I` must have shape.*\(2, 2, 4\)"),
        (np.zeros(4), np.zeros((2, 5)), r"`T` must have shape.*\(2, 5\)"),
        (np.zeros((2, 4)), np.zeros((3, 4)), r"same shape.*I \(2, 4\) and T \(3, 4\)"),
        (np.zeros(4), np.zeros((1, 4)), r"same shape.*I \(4,\) and T \(1, 4\)"),
        (np.array([0, np.inf, 0, 0]), np.zeros(4), r"`I` must be finite.*1 of its 4"),
        (np.zeros(4), np.array([np.nan] * 4), r"`T` must be finite.*4 of its 4"),
    ],
)
def test_pattern_arguments(I, T, message):
    with pytest.raises(ValueError, match=message):
        nd.value_and_grad(_net(), I, T)


def test_relax_arguments():
    net = _net()
    with pytest.raises(ValueError, match=r"`x0` must have shape.*\(5,\)"):
        nd.relax(net, np.zeros(4), x0=np.zeros(5))
    with pytest.raises(ValueError, match="`x0` must be finite"):
        nd.relax(net, np.zeros(4), x0=np.full(4, np.nan))
    with pytest.raises(
        ValueError, match="`rtol` must be a positive finite number, got -1"
    ):
        nd.relax(net, np.zeros(4), rtol=-1.0)
    with pytest.raises(
        ValueError, match="`atol` must be a positive finite number, got 0"
    ):
        nd.relax(net, np.zeros(4), atol=0.0)
    with pytest.raises(
        ValueError, match="`t_max` must be a positive finite number, got -5"
    ):
        nd.relax(net, np.zeros(4), t_max=-5.0)
    with pytest.raises(
        ValueError, match="`max_steps` must be a positive integer, got 0"
    ):
        nd.relax(net, np.zeros(4), max_steps=0)
    with pytest.raises(ValueError, match="`solver` must be an adaptive.*Euler"):
        nd.relax(net, np.zeros(4), solver=diffrax.Euler())


def test_unknown_method_and_activation():
    with pytest.raises(ValueError, match="`method` must be a gradient method.*'bptt'"):
        nd.value_and_grad(_net(), np.zeros(4), np.zeros(4), method="bptt")
    with pytest.raises(ValueError, match="Unknown activation 'relu'; expected one of"):
        nd.activation_by_name("relu")
    assert nd.activation_by_name("tanh") is nd.tanh


def test_input_reaches_input_units_only():
    net = nd.FirstOrderNetwork(np.zeros((N, N)), input_units=np.arange(N) < 2)
    x = jnp.full(N, 0.5)
    F = net.drive(x, jnp.ones(N))
    assert np.allclose(np.asarray(F), [1.5, 1.5, 0.5, 0.5])


def test_structural_zeros_never_reach_the_drive():
    W = np.ones((N, N))
    mask = np.eye(N, dtype=bool)
    a = nd.FirstOrderNetwork(W, connectivity=mask, activation=nd.identity)
    b = nd.FirstOrderNetwork(np.eye(N), activation=nd.identity)
    x = jnp.arange(N, dtype=float)
    assert np.array_equal(np.asarray(a.drive(x, x)), np.asarray(b.drive(x, x)))


@pytest.mark.slow  # test_relax.py's stiff-solver test compiles Kvaerno5 already
def test_kvaerno_is_accepted():
    fp = nd.relax(_net(), np.zeros(4), relaxation=nd.Relaxation(diffrax.Kvaerno5()))
    assert bool(fp.converged)
