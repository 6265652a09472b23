"""Every steady-state solver on both regimes (float64), against a dense reference.

- contracting: W = 0.5 randn / sqrt(N), where the plain iteration x <- F(x) converges;
- stable but not contracting: W = 3 (A - A^T) / sqrt(N), where eig(-1 + G W) has real
  part near -1 but |eig(G W)| > 1, so the plain iteration does not converge while the
  ODE (and Anderson, Newton, the damped iteration) do.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import neurodyn as nd

from .helpers import TIGHT, relative_error


N, P = 16, 3


def regime(name):
    rng = np.random.default_rng(7)
    A = rng.normal(size=(N, N))
    W = 0.5 * A / np.sqrt(N) if name == "contracting" else 3 * (A - A.T) / np.sqrt(N)
    I = rng.uniform(-1, 1, size=(P, N))
    T = rng.uniform(0.1, 0.9, size=(P, N))
    return nd.FirstOrderNetwork(jnp.asarray(W)), jnp.asarray(I), jnp.asarray(T)


@pytest.fixture(scope="module", params=["contracting", "not contracting"])
def problem(request):
    """The network, patterns, and the reference: x* by Newton's method to rounding,
    dE/dW by a dense solve of (1 - G W)^T z = J."""
    net, I, T = regime(request.param)
    x = nd.relax(net, I, solver=nd.ODERelaxation(), **TIGHT).x
    for _ in range(5):  # Newton polish
        jac = jax.vmap(jax.jacfwd(lambda x_, i: net.drive(x_, i) - x_))(x, I)
        x = (
            x
            - jnp.linalg.solve(jac, (jax.vmap(net.drive)(x, I) - x)[..., None])[..., 0]
        )
    _, g = nd.value_and_grad(net, I, T, method=nd.ImplicitDiff(lx.LU()), **TIGHT)
    return request.param, net, I, T, x, g.weights


SOLVERS = {
    "ode": nd.ODERelaxation(),
    "rk4, constant step": nd.ODERelaxation(nd.RK4(), dt0=0.2),
    "anderson": nd.Anderson(),
    "newton-krylov": nd.NewtonKrylov(),
    "damped iteration": nd.FixedPointIteration(damping=0.2, patience=200),
    "default": None,
}


@pytest.mark.parametrize("name", SOLVERS)
def test_solver_reaches_the_reference(problem, name):
    _, net, I, T, x_ref, g_ref = problem
    fp = nd.relax(net, I, solver=SOLVERS[name], **TIGHT)
    assert bool(jnp.all(fp.converged)), fp.result
    assert float(jnp.max(jnp.abs(fp.x - x_ref))) <= 1e-10
    _, g = nd.value_and_grad(net, I, T, solver=SOLVERS[name], **TIGHT)
    assert relative_error(g.weights, g_ref) <= 1e-8


def test_plain_iteration_fails_only_where_not_contracting(problem):
    kind, net, I, *_ = problem
    fp = nd.relax(net, I, solver=nd.FixedPointIteration(), **TIGHT)
    assert bool(jnp.all(fp.converged)) == (kind == "contracting")


def test_fallback_rescues_a_failed_iteration(problem):
    """Plain iteration backed by the ODE: where the iteration fails, the ODE settles
    every pattern and both solvers' steps are counted."""
    kind, net, I, _, x_ref, _ = problem
    plain = nd.relax(net, I, solver=nd.FixedPointIteration(), **TIGHT)
    rescue = nd.Fallback(nd.FixedPointIteration(), nd.ODERelaxation())
    one = nd.relax(net, I[0], solver=rescue, **TIGHT)  # a single pattern
    assert bool(one.converged)
    assert float(jnp.max(jnp.abs(one.x - x_ref[0]))) <= 1e-10
    fp = nd.relax(net, I, solver=rescue, **TIGHT)
    assert bool(jnp.all(fp.converged))
    assert float(jnp.max(jnp.abs(fp.x - x_ref))) <= 1e-10
    if kind == "not contracting":
        assert bool(jnp.all(fp.num_steps > plain.num_steps[0]))


def _ring():
    cyclic = np.roll(np.eye(3), 1, axis=1)
    return nd.FirstOrderNetwork(-20.0 * cyclic), jnp.full(3, -0.5)


def test_anderson_refuses_an_unstable_fixed_point():
    """The ring's only fixed point is unstable (a limit cycle around it). Anderson
    finds it; the attractor check reports it; the default then relaxes the ODE,
    which keeps moving (not converged)."""
    ring, I = _ring()
    x0 = jnp.array([0.5, 0.4, 0.3])
    found = nd.relax(ring, I, x0=x0, solver=nd.Anderson(attractor_check=0))
    assert bool(found.converged) and float(found.residual) < 1e-6
    checked = nd.relax(ring, I, x0=x0, solver=nd.Anderson())
    assert checked.result == nd.RESULTS.unstable
    assert nd.relax(ring, I, x0=x0).result == nd.RESULTS.not_converged


def test_unrolled_bptt_needs_the_ode():
    net, I, T = regime("contracting")
    _, g = nd.value_and_grad(net, I, T, method=nd.UnrolledBPTT(), **TIGHT)
    _, ref = nd.value_and_grad(net, I, T, **TIGHT)
    assert relative_error(g.weights, ref.weights) <= 1e-8
    with pytest.raises(ValueError, match="ODERelaxation"):
        nd.value_and_grad(
            net, I, T, method=nd.UnrolledBPTT(), solver=nd.Anderson(), **TIGHT
        )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nd.Anderson(memory=0), "memory"),
        (lambda: nd.Anderson(damping=1.5), "damping"),
        (lambda: nd.FixedPointIteration(damping=0.0), "damping"),
        (lambda: nd.FixedPointIteration(patience=0), "patience"),
        (lambda: nd.ODERelaxation(dt0=-1.0), "dt0"),
        (lambda: nd.Fallback(nd.Anderson()), "two or more"),
    ],
)
def test_bad_solver_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_solver_must_be_a_strategy_or_a_diffrax_solver():
    with pytest.raises(Exception, match="solver"):  # ValueError, or beartype's
        nd.relax(nd.FirstOrderNetwork(jnp.eye(2)), jnp.ones(2), solver=1)
