"""The fields of `AnalogRun` against NumPy: the error signal `z` the system holds,
its restart under a `PatternSchedule`, and `instantaneous_loss`. The calls repeat
those of tests/test_analog.py argument for argument (same network, patterns, times),
so they reuse its compiled programs."""

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd

from .helpers import random_network, random_patterns


SLOW_RUN = dict(rtol=1e-8, atol=1e-10)


@pytest.fixture(scope="module")
def problem():
    return random_network(nd.FirstOrderNetwork, scale=1.5), *random_patterns()


def numpy_instantaneous_loss(output_units, T, x):
    """1/2 sum_a sum_O (T - x_a(t))^2 over the patterns presented (x not NaN)."""
    residual = np.where(output_units, T[None] - x, 0.0)
    return 0.5 * np.nansum(residual**2, axis=(1, 2))


def numpy_adjoint(net, W, x, T):
    """The adjoint fixed point z* of (1 - G W)^T z = J at x (Pineda's eq 17 for
    g(Wx) + I, logistic g), J = T - x on the output units, by a dense solve."""
    W = np.where(np.asarray(net.connectivity), W, 0.0)
    s = 1 / (1 + np.exp(-W @ x))
    A = (s * (1 - s))[:, None] * W
    J = np.where(np.asarray(net.output_units), T - x, 0.0)
    return np.linalg.solve((np.eye(len(x)) - A).T, J)


def test_analog_run_holds_the_adjoint_and_its_instantaneous_loss(problem):
    """`z` starts at 0, and at t = 20 (20 tau) it is the adjoint fixed point of the
    weights it then holds, up to the lag of learning at eta tau = 0.05 (measured
    6.1e-3 to 1.1e-2 relative per pattern, an O(eta tau) effect, not round-off),
    and closer to it than to that of the starting weights (1.4e-2 to 6.5e-2);
    `instantaneous_loss` is E of the activity held."""
    net, I, T = problem
    run = nd.analog_learning(
        net, I, T, eta=0.05, t1=20.0, saveat=jnp.linspace(0, 20.0, 5)
    )
    x, z = np.asarray(run.x), np.asarray(run.z)
    assert z.shape == x.shape == (5, *I.shape)
    assert np.all(z[0] == 0)
    expected = numpy_instantaneous_loss(np.asarray(net.output_units), T, x)
    np.testing.assert_allclose(run.instantaneous_loss, expected, rtol=1e-12)
    W = np.asarray(run.model.weights[-1])
    for a in range(I.shape[0]):
        reference = numpy_adjoint(net, W, x[-1, a], np.asarray(T[a]))
        error = np.linalg.norm(z[-1, a] - reference) / np.linalg.norm(reference)
        start = numpy_adjoint(net, np.asarray(net.weights), x[-1, a], np.asarray(T[a]))
        stale = np.linalg.norm(z[-1, a] - start) / np.linalg.norm(start)
        assert error < 2e-2 and error < stale, (a, error, stale)


def test_pattern_schedule_restarts_the_error_signal(problem):
    """Under a schedule a pattern enters with z = 0 (as x = 0.5), z is NaN while the
    pattern is off, and `instantaneous_loss` sums the presented patterns only."""
    net, I, T = problem
    schedule = nd.PatternSchedule(jnp.array([0.0, 10.0, 20.0]), jnp.array([2, 0]))
    ts = jnp.array([0.0, 5.0, 10.0, 15.0, 20.0])
    run = nd.analog_learning(
        net,
        I,
        T,
        t1=20.0,
        saveat=ts,
        schedule=schedule,
        eta=0.002,
        method=nd.FullSystem(),
        **SLOW_RUN,
    )
    x, z = np.asarray(run.x), np.asarray(run.z)
    assert np.array_equal(np.isnan(z), np.isnan(x))
    assert np.all(z[0, 2] == 0) and np.all(z[2, 0] == 0)  # each pattern's entry
    assert np.linalg.norm(z[1, 2]) > 0 and np.linalg.norm(z[3, 0]) > 0  # then moves
    expected = numpy_instantaneous_loss(np.asarray(net.output_units), T, x)
    np.testing.assert_allclose(run.instantaneous_loss, expected, rtol=1e-12)
