"""Every steady-state solver on both regimes (float64), against a dense reference.

- contracting: W = 0.5 randn / sqrt(N), where the plain iteration x <- F(x) converges;
- stable but not contracting: W = 3 (A - A^T) / sqrt(N), where eig(-1 + G W) has real
  part near -1 but |eig(G W)| > 1, so the plain iteration does not converge while the
  ODE (and Anderson, Newton, the damped iteration) do.

The reference (fixed points and dE/dW) is NumPy: Newton's method and a dense solve of
the adjoint system, independent of neurodyn's solvers and gradient methods.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn._dynamics import forward_field
from neurodyn._relax import relax_patterns
from neurodyn._solvers.certificate import ritz_values

from .helpers import TIGHT, relative_error


N, P = 16, 3


def regime(name):
    rng = np.random.default_rng(7)
    A = rng.normal(size=(N, N))
    W = 0.5 * A / np.sqrt(N) if name == "contracting" else 3 * (A - A.T) / np.sqrt(N)
    I = rng.uniform(-1, 1, size=(P, N))
    T = rng.uniform(0.1, 0.9, size=(P, N))
    return nd.FirstOrderNetwork(jnp.asarray(W)), jnp.asarray(I), jnp.asarray(T)


def _logistic(u):
    return 1 / (1 + np.exp(-u))


def numpy_reference(W, I, T, x):
    """x* polished by Newton's method on x = g(Wx) + I, and dE/dW for
    E = 1/2 sum (T - x*)^2 from a dense solve of the adjoint system
    (1 - G W)^T z = x* - T, G = diag(g'(W x*)): dE/dW = sum_a (G z) x*^T. NumPy
    only, written from the equations."""
    x = np.array(x)
    n = W.shape[0]
    for _ in range(8):
        for a in range(len(x)):
            s = _logistic(W @ x[a])
            residual = s + I[a] - x[a]
            jacobian = (s * (1 - s))[:, None] * W - np.eye(n)
            x[a] = x[a] - np.linalg.solve(jacobian, residual)
    grad = np.zeros_like(W)
    for a in range(len(x)):
        s = _logistic(W @ x[a])
        G = s * (1 - s)
        z = np.linalg.solve((np.eye(n) - G[:, None] * W).T, x[a] - T[a])
        grad += np.outer(G * z, x[a])
    return x, grad


@functools.cache
def reference(kind):
    """The network, patterns, and the NumPy reference: x* to rounding and dE/dW by
    a dense adjoint solve (`numpy_reference`)."""
    net, I, T = regime(kind)
    x = nd.relax(net, I, relaxation=nd.Relaxation(nd.ODERelaxation(), **TIGHT)).x
    x, g = numpy_reference(*(np.asarray(a) for a in (net.weights, I, T, x)))
    return kind, net, I, T, jnp.asarray(x), jnp.asarray(g)


@pytest.fixture(scope="module", params=["contracting", "not contracting"])
def problem(request):
    return reference(request.param)


def test_reference_is_a_fixed_point_and_a_gradient(problem):
    """The reference itself: x* solves x = g(Wx) + I to rounding, and its dE/dW
    matches central finite differences of E(W) (x* re-solved by NumPy Newton) on a
    few entries."""
    _, net, I, T, x, g = problem
    W, I, T, x = (np.asarray(a) for a in (net.weights, I, T, x))
    assert np.max(np.abs(_logistic(x @ W.T) + I - x)) <= 1e-14
    eps = 1e-6
    for i, j in [(0, 0), (3, 7), (15, 2)]:
        dW = np.zeros_like(W)
        dW[i, j] = eps
        E = [
            0.5 * np.sum((T - numpy_reference(W + s * dW, I, T, x)[0]) ** 2)
            for s in (1, -1)
        ]
        assert abs((E[0] - E[1]) / (2 * eps) - g[i, j]) <= 1e-8 * np.max(np.abs(g))


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
    fp = nd.relax(net, I, relaxation=nd.Relaxation(SOLVERS[name], **TIGHT))
    assert bool(jnp.all(fp.converged)), fp.result
    assert float(jnp.max(jnp.abs(fp.x - x_ref))) <= 1e-10


# The gradient (RecurrentBackprop: its adjoint relaxes with the same strategy) with
# the default chain and the ODE on the harder network in the default tier; every
# other strategy, and the contracting network, in the slow tier.
@pytest.mark.parametrize(
    "name",
    [
        n if n in ("default", "ode") else pytest.param(n, marks=pytest.mark.slow)
        for n in SOLVERS
    ],
)
@pytest.mark.parametrize(
    "kind", [pytest.param("contracting", marks=pytest.mark.slow), "not contracting"]
)
def test_solver_gives_the_reference_gradient(kind, name):
    _, net, I, T, _, g_ref = reference(kind)
    _, g = nd.value_and_grad(
        net, I, T, relaxation=nd.Relaxation(SOLVERS[name], **TIGHT)
    )
    assert relative_error(g.weights, g_ref) <= 1e-8


def test_plain_iteration_fails_only_where_not_contracting(problem):
    kind, net, I, *_ = problem
    fp = nd.relax(net, I, relaxation=nd.Relaxation(nd.FixedPointIteration(), **TIGHT))
    assert bool(jnp.all(fp.converged)) == (kind == "contracting")


def test_fallback_rescues_a_failed_iteration(problem):
    """Plain iteration backed by the ODE: where the iteration fails, the ODE settles
    every pattern and both solvers' steps are counted."""
    kind, net, I, _, x_ref, _ = problem
    plain = nd.relax(
        net, I, relaxation=nd.Relaxation(nd.FixedPointIteration(), **TIGHT)
    )
    rescue = nd.Fallback(nd.FixedPointIteration(), nd.ODERelaxation())
    one = nd.relax(
        net, I[0], relaxation=nd.Relaxation(rescue, **TIGHT)
    )  # a single pattern
    assert bool(one.converged)
    assert float(jnp.max(jnp.abs(one.x - x_ref[0]))) <= 1e-10
    fp = nd.relax(net, I, relaxation=nd.Relaxation(rescue, **TIGHT))
    assert bool(jnp.all(fp.converged))
    assert float(jnp.max(jnp.abs(fp.x - x_ref))) <= 1e-10
    if kind == "not contracting":
        assert bool(jnp.all(fp.num_steps > plain.num_steps[0]))


class _Recorded(nd.AbstractSteadyStateSolver):
    """Anderson acceleration, noting on the host each time its program runs."""

    def ode_relaxation(self) -> None:
        return None

    def solve(self, relaxation, field, y0, tau, scale):
        jax.debug.callback(lambda: _RESCUES.append(1))
        return nd.Anderson().solve(relaxation, field, y0, tau, scale)


_RESCUES = []


def test_the_fallback_decides_for_the_whole_batch_under_vmap():
    """The fallback is written for one pattern; under `vmap` (the batch axis, and a
    user's sweep around it) its rescue still runs only when some pattern needs
    it, not for every pattern as a select would, and patterns that settled keep
    the first solver's answer. Non-contracting weights: strongly driven patterns
    saturate and the plain iteration settles them; a weakly driven one needs the
    rescue."""
    relaxation = nd.Relaxation(
        nd.Fallback(nd.FixedPointIteration(patience=5), _Recorded())
    )
    net, I, _ = regime("not contracting")
    strong = 5 * I
    _RESCUES.clear()
    fp = nd.relax(net, strong, relaxation=relaxation)
    sweep = jax.jit(
        jax.vmap(
            lambda s: relax_patterns(
                eqx.tree_at(lambda m: m.weights, net, s * net.weights),
                strong,
                jnp.full_like(strong, 0.5),
                relaxation,
            )
        )
    )(jnp.array([0.5, 1.0]))
    jax.block_until_ready(sweep)
    assert bool(jnp.all(fp.converged)) and bool(jnp.all(sweep.converged))
    assert _RESCUES == []
    # One weakly driven pattern: the rescue runs, once for the batch, and the
    # others keep the iteration's answer.
    mixed = nd.relax(net, strong.at[2].set(I[2]), relaxation=relaxation)
    assert _RESCUES != []
    assert bool(jnp.all(mixed.converged))
    assert bool(jnp.all(mixed.x[:2] == fp.x[:2]))
    assert bool(jnp.all(mixed.num_steps[:2] == fp.num_steps[:2]))


def _ring():
    cyclic = np.roll(np.eye(3), 1, axis=1)
    return nd.FirstOrderNetwork(-20.0 * cyclic), jnp.full(3, -0.5)


def test_anderson_refuses_an_unstable_fixed_point():
    """The ring's only fixed point is unstable (a limit cycle around it). Anderson
    finds it; the stability certificate reports it; the default then relaxes the
    ODE, which keeps moving (not converged)."""
    ring, I = _ring()
    x0 = jnp.array([0.5, 0.4, 0.3])
    found = nd.relax(
        ring, I, x0=x0, relaxation=nd.Relaxation(nd.Anderson(), attractors_only=False)
    )
    assert bool(found.converged) and float(found.residual) < 1e-6
    checked = nd.relax(ring, I, x0=x0, relaxation=nd.Relaxation(nd.Anderson()))
    assert checked.result == nd.RESULTS.unstable
    assert nd.relax(ring, I, x0=x0).result == nd.RESULTS.not_converged


def _field(net, i):
    return lambda y: forward_field(net, y, i)


def test_ritz_values_are_the_eigenvalues_when_steps_reach_n():
    """With as many Arnoldi steps as units the Krylov space is the whole space: the
    Ritz values are the eigenvalues of (-1 + G W)/tau, computed in NumPy from the
    explicit Jacobian (tau = 2.5 counts)."""
    rng = np.random.default_rng(3)
    n = 6
    W = 2.0 * rng.normal(size=(n, n)) / np.sqrt(n)
    net = nd.FirstOrderNetwork(jnp.asarray(W), tau=2.5)
    x, i = rng.uniform(-1, 1, size=n), jnp.asarray(rng.uniform(-1, 1, size=n))
    s = _logistic(W @ x)
    L = ((s * (1 - s))[:, None] * W - np.eye(n)) / 2.5
    expected = np.sort_complex(np.linalg.eigvals(L))
    got = np.sort_complex(np.asarray(ritz_values(_field(net, i), jnp.asarray(x), n)))
    assert np.allclose(got, expected, atol=1e-10)


def test_the_probe_is_a_constant_of_the_program():
    """The certificate's probe is drawn when the program is traced: no random number
    generator in the program (compiled into every solver that certifies, it was
    three quarters of the certificate's instructions), and the same probe under
    `jit` as outside it."""
    rng = np.random.default_rng(3)
    net = nd.FirstOrderNetwork(jnp.asarray(rng.normal(size=(6, 6))))
    x, i = jnp.asarray(rng.uniform(-1, 1, size=6)), jnp.zeros(6)
    program = str(jax.make_jaxpr(lambda y: ritz_values(_field(net, i), y))(x))
    assert "threefry" not in program and "random_bits" not in program
    eager = ritz_values(_field(net, i), x)
    jitted = jax.jit(lambda y: ritz_values(_field(net, i), y))(x)
    assert np.allclose(np.sort_complex(jitted), np.sort_complex(eager), rtol=1e-12)


def test_certificate_margin_is_the_horizon():
    """A linear unit dx/dt = -x + w x + I: growth rate w - 1. Above 1/t_max
    (e-folding within the horizon) the fixed point is unstable, below it settles;
    a stable one is never flagged. The rate is exact (one unit, one Arnoldi step)."""
    identity = nd.identity
    for rate, t_max, flagged in [
        (2e-3, None, True),  # horizon 1000: margin 1e-3
        (5e-4, None, False),
        (5e-4, 1e4, True),  # horizon 1e4: margin 1e-4
        (-1e-3, 1e6, False),
    ]:
        net = nd.FirstOrderNetwork(jnp.array([[1.0 + rate]]), activation=identity)
        fp = nd.relax(
            net, jnp.ones(1), relaxation=nd.Relaxation(nd.NewtonKrylov(), t_max=t_max)
        )
        assert float(fp.residual) < 1e-8
        assert (fp.result == nd.RESULTS.unstable) == flagged, (rate, t_max)
        assert bool(fp.converged) != flagged


@pytest.mark.slow  # UnrolledBPTT through the whole default chain: its own compilation
def test_unrolled_bptt_differentiates_the_chains_ode():
    """With the default chain, UnrolledBPTT differentiates its last solver, the
    ODE."""
    _, net, I, T, _, g_ref = reference("contracting")
    _, g = nd.value_and_grad(
        net, I, T, method=nd.UnrolledBPTT(), relaxation=nd.Relaxation(**TIGHT)
    )
    assert relative_error(g.weights, g_ref) <= 1e-8


def test_unrolled_bptt_refuses_another_strategy():
    _, net, I, T, _, _ = reference("contracting")
    for solver in (nd.Anderson(), nd.Fallback(nd.ODERelaxation(), nd.Anderson())):
        with pytest.raises(ValueError, match="ODERelaxation"):
            nd.value_and_grad(
                net,
                I,
                T,
                method=nd.UnrolledBPTT(),
                relaxation=nd.Relaxation(solver, **TIGHT),
            )


def test_each_solver_names_the_ode_it_relaxes_with():
    """`ode_relaxation()`, what `UnrolledBPTT` integrates with: the solver itself, a
    fallback's last solver (nested too), None for an iteration or a fallback that
    ends in one."""
    ode = nd.ODERelaxation(nd.RK4(), dt0=0.1)
    assert ode.ode_relaxation() is ode
    assert nd.Fallback(nd.Anderson(), ode).ode_relaxation() is ode
    nested = nd.Fallback(nd.Anderson(), nd.Fallback(nd.FixedPointIteration(), ode))
    assert nested.ode_relaxation() is ode
    for solver in (
        nd.FixedPointIteration(),
        nd.Anderson(),
        nd.NewtonKrylov(),
        nd.Fallback(ode, nd.Anderson()),
    ):
        assert solver.ode_relaxation() is None


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
        nd.Relaxation(1)
