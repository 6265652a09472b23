"""Learning rules beside the exact gradient: equilibrium propagation, Jacobian-free and
phantom gradients, the angle report. Every estimate is checked in float64 against
the exact gradient (itself checked against finite differences)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import neurodyn as nd

from .helpers import (
    TIGHT,
    finite_difference_grad,
    random_network,
    random_patterns,
    relative_error,
    weights_loss,
)


N = 6
BETAS = np.array([1e-1, 3e-2, 1e-2, 3e-3, 1e-3])
# Anderson alone compiles in two thirds of the time of the default fallback chain.
TIGHT = dict(relaxation=nd.Relaxation(nd.Anderson(), **TIGHT))


def energy_network(seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    w = scale * rng.normal(size=(N, N)) / np.sqrt(N)
    return nd.EnergyNetwork(
        (w + w.T) / 2,
        input_units=np.arange(N) < 3,
        output_units=np.arange(N) >= N - 2,
    )


@pytest.fixture(scope="module")
def energy_problem():
    model = energy_network()
    I, T = random_patterns(N, 3)
    _, exact = nd.value_and_grad(model, I, T, method=nd.ImplicitDiff(), **TIGHT)
    return model, I, T, exact.weights


def test_energy_network_descends_its_energy():
    model = energy_network()
    I = random_patterns(N, 1)[0][0]
    s = jnp.linspace(-1.0, 2.0, N)
    velocity = model.drive(s, I) - s
    np.testing.assert_allclose(velocity, -jax.grad(model.energy)(s, I), atol=1e-12)
    # the Jacobian of the drive is symmetric: the condition of EP
    A = jax.jacfwd(model.drive)(s, I)
    np.testing.assert_allclose(A, A.T, atol=1e-12)


def test_energy_network_exact_gradient_matches_finite_differences(energy_problem):
    model, I, T, exact = energy_problem
    fd = finite_difference_grad(weights_loss(model, I, T, **TIGHT), model.weights)
    assert relative_error(exact, fd) < 1e-7


def _ep_errors(energy_problem, symmetric):
    model, I, T, exact = energy_problem
    errors = []
    for beta in BETAS:
        method = nd.EquilibriumPropagation(jnp.asarray(beta), symmetric=symmetric)
        _, grads = nd.value_and_grad(model, I, T, method=method, **TIGHT)
        errors.append(relative_error(grads.weights, exact))
    return np.asarray(errors)


@pytest.mark.parametrize("symmetric, order", [(False, 1), (True, 2)])
def test_equilibrium_propagation_converges_at_its_order(
    energy_problem, symmetric, order
):
    errors = _ep_errors(energy_problem, symmetric)
    slope = np.polyfit(np.log(BETAS), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.15, (slope, errors)
    assert errors[-1] < 1e-2 if order == 1 else errors[-1] < 1e-5


@pytest.mark.slow
def test_continual_ep_approaches_ep_as_its_rate_vanishes(energy_problem):
    """C-EP's weight change over one nudged phase, per unit rate, against EP's
    one-sided estimate at the same beta: the moving weights add O(eta / beta)
    relative to it (fitted slope 1 over eta), so at small eta and beta it is the
    exact gradient step."""
    model, I, T, exact = energy_problem
    beta, t1 = 1e-3, 40.0  # the slowest nudged mode decays like exp(-0.93 t)
    ep = nd.EquilibriumPropagation(jnp.asarray(beta))
    _, grads = nd.value_and_grad(model, I, T, method=ep, **TIGHT)
    etas = np.array([1e-4, 3e-5, 1e-5, 3e-6, 1e-6])
    errors = []
    for eta in etas:
        run = nd.analog_learning(
            model,
            I,
            T,
            eta=eta,
            t1=t1,
            saveat=np.array([t1]),
            method=nd.ContinualEP(beta),
            rtol=1e-12,
            atol=1e-14,
        )
        update = -(run.model.weights[-1] - model.weights) / eta
        errors.append(relative_error(update, grads.weights))
    slope = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    assert abs(slope - 1) < 0.15, (slope, errors)
    assert errors[-1] < 1e-3, errors
    assert relative_error(update, exact) < 1e-2


@pytest.mark.slow
def test_equilibrium_propagation_trains_like_any_method():
    model = energy_network()
    I, T = random_patterns(N, 3)
    method = nd.EquilibriumPropagation(jnp.asarray(1e-3), symmetric=True)
    run = nd.train(model, I, T, optimizer=optax.sgd(0.5), steps=5, method=method)
    assert np.all(np.diff(np.asarray(run.history.E_total)) < 0)


def test_equilibrium_propagation_refuses_a_network_without_energy():
    model = random_network(nd.FirstOrderNetwork, N)
    I, T = random_patterns(N, 2)
    with pytest.raises(ValueError, match="EnergyNetwork"):
        nd.value_and_grad(model, I, T, method=nd.EquilibriumPropagation())


def test_continual_ep_refuses_a_network_without_energy_and_imex_solvers():
    model = random_network(nd.FirstOrderNetwork, N)
    I, T = random_patterns(N, 2)
    with pytest.raises(ValueError, match="EnergyNetwork"):
        nd.analog_learning(model, I, T, eta=0.1, t1=1.0, method=nd.ContinualEP())
    with pytest.raises(ValueError, match="non-IMEX"):
        nd.ContinualEP(solver=diffrax.KenCarp4())


@pytest.fixture(scope="module")
def rate_problem():
    model = random_network(nd.RateNetwork, N, scale=1.2, activation=nd.tanh)
    I, T = random_patterns(N, 3)
    _, exact = nd.value_and_grad(model, I, T, method=nd.ImplicitDiff(), **TIGHT)
    return model, I, T, exact.weights


def test_phantom_gradient_approaches_the_exact_gradient(rate_problem):
    """The phantom adjoint z_k at x* (one small compilation per k) times dF/dW, against
    the exact gradient; `value_and_grad` with the method is held equal to it at k = 1
    in `test_jacobian_free_is_its_formula`."""
    model, I, T, exact = rate_problem
    r = nd.relax(model, I, **TIGHT).x
    x_bar = -jnp.where(model.output_units, T - r, 0)
    errors = []
    for k in (1, 2, 4, 8, 16, 64):
        method = nd.PhantomGradient(k, 0.8)
        z, _ = jax.vmap(lambda *a, m=method: m.solve_adjoint(model, *a, None))(
            r, I, x_bar
        )
        grads, _ = nd.parameter_cotangent(model, r, I, z)
        errors.append(relative_error(grads.weights, exact))
    assert np.all(np.diff(errors) < 0), errors
    assert errors[-1] < 1e-6, errors


def test_jacobian_free_is_its_formula(rate_problem):
    """JFB (Fung et al.) = `SemiGradient()`: z = x_bar, so for the rate network
    dE/dW = -(f'(u) * J) r^T summed over patterns, with J = (T - r) on outputs."""
    model, I, T, _ = rate_problem
    _, grads = nd.value_and_grad(model, I, T, method=nd.SemiGradient(), **TIGHT)
    r = nd.relax(model, I, **TIGHT).x
    u = r @ model.effective_weights.T + jnp.where(model.input_units, I, 0)
    J = jnp.where(model.output_units, T - r, 0)
    formula = -((model.activation.derivative(u) * J).T @ r)
    np.testing.assert_allclose(
        grads.weights, jnp.where(model.connectivity, formula, 0), atol=1e-12
    )
    # and it is the phantom gradient with one undamped step
    _, phantom = nd.value_and_grad(
        model, I, T, method=nd.PhantomGradient(1, 1.0), **TIGHT
    )
    np.testing.assert_allclose(phantom.weights, grads.weights, atol=1e-12)


def test_compare_directions_reports_angles_and_costs(rate_problem):
    model, I, T, exact = rate_problem
    methods = [nd.RecurrentBackprop(), nd.SemiGradient(), nd.PhantomGradient(3)]
    report = nd.compare_directions(model, I, T, methods=methods, repeats=1, **TIGHT)
    assert [type(d) for d in report] == [nd.Direction] * 3
    assert report[0].angle < 1e-3 and abs(report[0].relative_norm - 1) < 1e-8
    _, semi = nd.value_and_grad(model, I, T, method=nd.SemiGradient(), **TIGHT)
    g, e = np.ravel(semi.weights), np.ravel(exact)
    cosine = g @ e / np.linalg.norm(g) / np.linalg.norm(e)
    np.testing.assert_allclose(report[1].cosine, cosine, rtol=1e-10)
    np.testing.assert_allclose(report[1].angle, np.degrees(np.arccos(cosine)))
    np.testing.assert_allclose(
        report[1].relative_norm, np.linalg.norm(g) / np.linalg.norm(e)
    )
    assert all(d.seconds > 0 and d.memory_bytes >= 0 for d in report)
    assert report[2].relative_error < report[1].relative_error


@pytest.fixture(scope="module")
def small_problem():
    model = random_network(nd.RateNetwork, 4, scale=1.2, activation=nd.tanh)
    I, T = random_patterns(4, 2)
    return model, I, T


def test_jacobian_norm_is_unbiased(small_problem):
    """Hutchinson's estimate with K probes against sum_a ||dF/dx||_F^2 from the dense
    Jacobians, within four standard deviations sqrt(sum_a 2 ||A^T A||_F^2 / K)."""
    model, I, _ = small_problem
    probes = 20_000
    estimate = nd.jacobian_norm(model, I, key=jax.random.key(3), probes=probes, **TIGHT)
    x = nd.relax(model, I, **TIGHT).x
    A = jax.vmap(jax.jacfwd(model.drive))(x, I)
    exact = float(jnp.sum(A**2))
    AtA = jnp.einsum("pji,pjk->pik", A, A)
    sigma = float(jnp.sqrt(2 * jnp.sum(AtA**2) / probes))
    assert abs(float(estimate) - exact) < 4 * sigma, (float(estimate), exact, sigma)
    assert sigma < 0.02 * exact


@pytest.mark.slow
def test_jacobian_penalty_gradient_matches_finite_differences(small_problem):
    """One SGD step of `train` with the penalty minus one without is -lr times the
    penalty's gradient, through the fixed point; against central differences of
    the same estimate (the same probes)."""
    model, I, T = small_problem
    key, gamma, probes = jax.random.key(7), 0.3, 3
    options = dict(optimizer=optax.sgd(1.0), steps=1, method=nd.ImplicitDiff())
    plain = nd.train(model, I, T, key=key, **options, **TIGHT).model
    penalised = nd.train(
        model,
        I,
        T,
        key=key,
        regularizer=nd.JacobianPenalty(gamma, probes),
        **options,
        **TIGHT,
    ).model
    step_key = jax.random.fold_in(jax.random.fold_in(key, 0), 1)

    def penalty(w):
        m = eqx.tree_at(lambda net: net.weights, model, w)
        return gamma * nd.jacobian_norm(m, I, key=step_key, probes=probes, **TIGHT)

    fd = finite_difference_grad(penalty, model.weights)
    grad = plain.weights - penalised.weights
    assert relative_error(grad, jnp.where(model.connectivity, fd, 0)) < 1e-6


def numpy_energy_relax(weights, input_units, I, dt=0.2, steps=3000):
    """Euler steps of ds/dt = -s + rho'(s) (W rho(s) + I_A), logistic rho and
    W = (W0 + W0^T)/2, from s = 0.5, in NumPy."""
    W = (weights + weights.T) / 2
    I = np.where(input_units, I, 0.0)
    s = np.full_like(I, 0.5)
    for _ in range(steps):
        rho = 1 / (1 + np.exp(-s))
        s = s + dt * (-s + rho * (1 - rho) * (rho @ W.T + I))
    return s


@pytest.mark.slow
def test_learning_rules_demo_recomputes_in_numpy(tmp_path_factory):
    from .helpers import run_demo

    _, metrics, arrays = run_demo(tmp_path_factory, "learning-rules")
    params, data = arrays["params"], arrays["data"]
    by_method = arrays["params_by_method"]
    assert set(by_method) == set(metrics["methods"])
    for label, weights in by_method.items():
        s = numpy_energy_relax(weights, params["input_units"], data["I"])
        error = np.where(params["output_units"], data["T"] - s, 0.0)
        E = 0.5 * np.sum(error**2)
        reported = metrics["methods"][label]
        np.testing.assert_allclose(E, reported["final_E_total"], rtol=1e-3)
        assert reported["final_E_total"] < reported["start_E_total"], label
        assert reported["stable"], label
    exact = metrics["methods"]["exact (ImplicitDiff)"]
    assert exact["angle_max"] < 1e-2
    continual = metrics["continual"]["runs"]
    assert set(arrays["params_continual"]) == set(continual)
    for label, weights in arrays["params_continual"].items():
        s = numpy_energy_relax(weights, params["input_units"], data["I"])
        error = np.where(params["output_units"], data["T"] - s, 0.0)
        reported = continual[label]["final_E_total"]
        if reported is not None:
            np.testing.assert_allclose(0.5 * np.sum(error**2), reported, rtol=1e-3)


def test_phantom_damping_may_be_traced():
    """The damping is a parameter like any other: a traced value (here under jit,
    as when vmapped over dampings) builds the method; a concrete one is checked."""
    damping = jax.jit(lambda d: nd.PhantomGradient(5, d).damping)(0.5)
    assert float(damping) == 0.5
    with pytest.raises(ValueError, match="`damping` must be in"):
        nd.PhantomGradient(5, 1.5)
