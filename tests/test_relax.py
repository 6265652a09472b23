"""Relaxation to a fixed point: accuracy, batches, solvers, and honest failures."""

import diffrax
import jax.numpy as jnp
import numpy as np
import optax
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
    fp = nd.relax(net, I, relaxation=nd.Relaxation(**TIGHT))
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
    a = nd.relax(net, I[0], relaxation=nd.Relaxation(**TIGHT))
    b = nd.relax(net, I[0], x0=jnp.full(6, 0.5), relaxation=nd.Relaxation(**TIGHT))
    c = nd.relax(net, I[0], x0=jnp.full(6, 5.0), relaxation=nd.Relaxation(**TIGHT))
    assert np.array_equal(np.asarray(a.x), np.asarray(b.x))
    assert np.allclose(np.asarray(a.x), np.asarray(c.x), atol=1e-10)
    assert float(c.t) > float(a.t)


def test_stiff_solver_agrees():
    net = random_network(nd.FirstOrderNetwork)
    I, _ = random_patterns()
    ref = nd.relax(net, I, relaxation=nd.Relaxation(**TIGHT))
    stiff = nd.relax(
        net,
        I,
        relaxation=nd.Relaxation(diffrax.Kvaerno5(), **TIGHT),
    )
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


# Every method's refusal at an unstable fixed point is in the default tier (below);
# at a limit cycle, RecurrentBackprop's there and the others' in the slow tier.
@pytest.mark.parametrize(
    "method",
    [
        "RecurrentBackprop",
        pytest.param("ImplicitDiff", marks=pytest.mark.slow),
        pytest.param("UnrolledBPTT", marks=pytest.mark.slow),
    ],
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
    """A batch of the ring: one pattern oscillates, one sits on the unstable fixed
    point (started there), one saturates (I = 3: x* = 3, g' ~ 0, stable)."""
    ring, I = _ring()
    I = jnp.stack([I, I, jnp.full(3, 3.0)])
    x0 = jnp.array([[0.5, 0.4, 0.3], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    fp = nd.relax(ring, I, x0=x0)
    assert fp.converged.tolist() == [False, False, True]
    assert (fp.result == nd.RESULTS.not_converged).tolist() == [True, False, False]
    assert (fp.result == nd.RESULTS.unstable).tolist() == [False, True, False]


def test_divergence_is_reported():
    net = nd.FirstOrderNetwork(2.0 * jnp.eye(2), activation=nd.identity)
    fp = nd.relax(net, jnp.ones(2))
    assert fp.result == nd.RESULTS.diverged
    with pytest.raises(Exception, match="did not converge: the state diverged"):
        nd.value_and_grad(net, jnp.ones(2), jnp.zeros(2))


def _ring_eigenvalues(ring, x, I):
    """Eigenvalues of (-1 + G W)/tau at x, G = diag(g'(W x)), in NumPy."""
    W = np.asarray(ring.weights)
    u = W @ np.asarray(x)
    g_prime = np.exp(-u) / (1 + np.exp(-u)) ** 2
    return np.linalg.eigvals(-np.eye(3) + g_prime[:, None] * W)


@pytest.mark.parametrize(
    "solver",
    [
        None,
        nd.ODERelaxation(),
        nd.Anderson(),
        nd.FixedPointIteration(damping=0.1, patience=100),
    ],
    ids=["default", "ode", "anderson", "damped iteration"],
)
def test_symmetric_start_reports_the_unstable_fixed_point(solver):
    """From the default start (0.5 on every unit) the ring stays on its symmetric
    line, an invariant set on which its fixed point x = 0 is stable: every strategy
    settles there. The dynamics cannot hold it (eigenvalues 1.5 +- 4.33i, NumPy):
    the stability certificate reports `unstable`, never `converged`."""
    ring, I = _ring()
    fp = nd.relax(ring, I, relaxation=nd.Relaxation(solver))
    assert fp.result == nd.RESULTS.unstable
    assert not bool(fp.converged)
    assert float(fp.residual) < 1e-6  # a fixed point indeed
    assert np.allclose(np.asarray(fp.x), 0, atol=1e-6)
    eigenvalues = _ring_eigenvalues(ring, fp.x, I)
    assert np.allclose(np.sort(eigenvalues.real), [-6, 1.5, 1.5], atol=1e-5)
    with pytest.raises(Exception, match="The fixed point is unstable"):
        nd.relax(ring, I, relaxation=nd.Relaxation(solver), throw=True)


def test_unstable_fixed_points_on_request():
    """`attractors_only=False` (continuation, stability analysis) accepts the ring's
    unstable fixed point, from the symmetric start or by Newton from elsewhere."""
    ring, I = _ring()
    fp = nd.relax(ring, I, relaxation=nd.Relaxation(attractors_only=False))
    assert bool(fp.converged) and float(fp.residual) < 1e-6
    x0 = jnp.array([0.05, -0.02, 0.01])
    newton = nd.NewtonKrylov()
    assert (
        nd.relax(ring, I, x0=x0, relaxation=nd.Relaxation(newton)).result
        == nd.RESULTS.unstable
    )
    found = nd.relax(
        ring, I, x0=x0, relaxation=nd.Relaxation(newton, attractors_only=False)
    )
    assert bool(found.converged)
    assert np.allclose(np.asarray(found.x), 0, atol=1e-6)


@pytest.mark.parametrize(
    "method", ["RecurrentBackprop", "ImplicitDiff", "UnrolledBPTT"]
)
def test_gradient_at_an_unstable_fixed_point_raises(method):
    ring, I = _ring()
    with pytest.raises(Exception, match="The fixed point is unstable.*x0"):
        nd.value_and_grad(ring, I, jnp.full(3, 0.5), method=getattr(nd, method)())


def test_learning_at_an_unstable_fixed_point_raises():
    ring, I = _ring()
    T = jnp.full(3, 0.5)
    with pytest.raises(Exception, match="The fixed point is unstable"):
        nd.train(ring, I, T, optimizer=optax.sgd(0.1), steps=2)


@pytest.mark.slow  # the coupled system's own compilation
def test_analog_learning_at_an_unstable_fixed_point_raises():
    ring, I = _ring()
    T = jnp.full(3, 0.5)
    with pytest.raises(Exception, match="The fixed point is unstable"):
        nd.analog_learning(ring, I, T, eta=0.1, t1=1.0, saveat=jnp.array([0.0, 1.0]))


def test_adjoint_failure_at_an_unstable_fixed_point():
    """With the certificate switched off, the ring settles on its unstable fixed
    point from x = 0; the adjoint dynamics then diverge (Almeida, read backwards)
    and the gradient still refuses. A direct linear solve of the adjoint succeeds
    there: only the certificate stands between it and a gradient."""
    ring, I = _ring()
    T, x0 = jnp.array([0.3, 0.2, 0.1]), jnp.zeros(3)
    unchecked = nd.Relaxation(nd.ODERelaxation(), attractors_only=False)
    options = dict(x0=x0, relaxation=unchecked)
    assert bool(nd.relax(ring, I, **options).converged)
    with pytest.raises(Exception, match="adjoint"):
        nd.value_and_grad(ring, I, T, **options)
    nd.value_and_grad(ring, I, T, method=nd.ImplicitDiff(), **options)
    with pytest.raises(Exception, match="The fixed point is unstable"):
        nd.value_and_grad(ring, I, T, method=nd.ImplicitDiff(), x0=x0)
