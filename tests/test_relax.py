"""Relaxation to a fixed point: accuracy, batches, solvers, and honest failures."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd

from .helpers import NETWORK_CLASSES, TIGHT, random_network, random_patterns


def _explicit_drive(net, x, I):
    """x -> g(Wx) + I (or g(Wx + I)) written out in NumPy."""
    W = np.where(np.asarray(net.connectivity), np.asarray(net.weights), 0)
    I = np.where(np.asarray(net.input_units), np.asarray(I), 0)
    g = np.vectorize(lambda u: float(net.activation(u)))
    if isinstance(net, nd.RateNetwork):
        return g(x @ W.T + I)
    return g(x @ W.T) + I


@pytest.mark.parametrize("cls", NETWORK_CLASSES, ids=lambda c: c.__name__)
def test_fixed_point_equation_holds(cls):
    net = random_network(cls)
    I, _ = random_patterns()
    fp = nd.relax(net, I, **TIGHT)
    assert fp.x.shape == I.shape
    assert np.all(fp.converged)
    x = np.asarray(fp.x)
    assert np.max(np.abs(x - _explicit_drive(net, x, I))) <= 1e-8
    assert np.all(np.asarray(fp.residual) <= 1e-8)
    assert np.all(np.asarray(fp.num_steps) > 0) and np.all(np.asarray(fp.t) > 0)


def test_default_start_is_half_and_x0_is_used():
    """From x0 = 0.5 and from another start the network reaches the same attractor
    here (weights are small); the start shows in the relaxation time."""
    net = random_network(nd.FirstOrderNetwork, scale=0.3)
    I, _ = random_patterns()
    a = nd.relax(net, I[0], **TIGHT)
    b = nd.relax(net, I[0], x0=jnp.full(6, 0.5), **TIGHT)
    c = nd.relax(net, I[0], x0=jnp.full(6, 5.0), **TIGHT)
    assert np.array_equal(np.asarray(a.x), np.asarray(b.x))
    assert np.allclose(np.asarray(a.x), np.asarray(c.x), atol=1e-10)
    assert float(c.t) > float(a.t)


def test_stiff_solver_agrees():
    net = random_network(nd.FirstOrderNetwork)
    I, _ = random_patterns()
    ref = nd.relax(net, I, **TIGHT)
    stiff = nd.relax(net, I, solver=diffrax.Kvaerno5(), **TIGHT)
    assert np.all(stiff.converged)
    assert np.allclose(np.asarray(stiff.x), np.asarray(ref.x), atol=1e-10)


def _ring():
    """Pineda's warning: weights that oscillate. A 3-unit inhibitory ring has an
    unstable symmetric fixed point (eigenvalues 1.5 +- 4.33i) and a limit cycle."""
    cyclic = np.roll(np.eye(3), 1, axis=1)
    return nd.FirstOrderNetwork(-20.0 * cyclic), jnp.full(3, -0.5)


def test_limit_cycle_is_reported_not_converged():
    ring, I = _ring()
    fp = nd.relax(ring, I, x0=jnp.array([0.5, 0.4, 0.3]))
    assert not bool(fp.converged)
    assert fp.result == nd.RESULTS.not_converged
    assert float(fp.residual) > 1e-2  # far from any fixed point: still moving
    with pytest.raises(Exception, match="did not converge"):
        nd.relax(ring, I, x0=jnp.array([0.5, 0.4, 0.3]), throw=True)


@pytest.mark.parametrize(
    "method", ["RecurrentBackprop", "ImplicitDiff", "UnrolledBPTT"]
)
def test_limit_cycle_gradient_raises(method):
    ring, I = _ring()
    with pytest.raises(Exception, match="did not converge"):
        nd.value_and_grad(
            ring,
            I,
            jnp.zeros(3),
            x0=jnp.array([0.5, 0.4, 0.3]),
            method=getattr(nd, method)(),
        )


def test_one_failing_pattern_is_flagged_alone():
    ring, I = _ring()
    x0 = jnp.array([[0.5, 0.4, 0.3], [0.0, 0.0, 0.0]])
    fp = nd.relax(ring, jnp.stack([I, I]), x0=x0)
    assert fp.converged.tolist() == [False, True]  # x = 0 is the (unstable) fixed point


def test_divergence_is_reported():
    net = nd.FirstOrderNetwork(2.0 * jnp.eye(2), activation=nd.identity)
    fp = nd.relax(net, jnp.ones(2))
    assert fp.result == nd.RESULTS.diverged
    with pytest.raises(Exception, match="did not converge: the state diverged"):
        nd.value_and_grad(net, jnp.ones(2), jnp.zeros(2))


def test_adjoint_failure_at_an_unstable_fixed_point():
    """From the symmetric start the ring settles (exactly, by symmetry) on its
    unstable fixed point; the adjoint dynamics then diverge (Almeida, read backwards)
    and the gradient refuses. (The start excites no unstable mode, so the default's
    attractor check passes too; its adjoint is a linear solve, which succeeds.)"""
    ring, I = _ring()
    for solver in (nd.ODERelaxation(), None):
        assert bool(nd.relax(ring, I, x0=jnp.zeros(3), solver=solver).converged)
    T = jnp.array([0.3, 0.2, 0.1])
    with pytest.raises(Exception, match="adjoint"):
        nd.value_and_grad(ring, I, T, x0=jnp.zeros(3), solver=nd.ODERelaxation())
