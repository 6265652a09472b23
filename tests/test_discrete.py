"""Discrete-time networks and backward tuning (`neurodyn.discrete`), in float64."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn.discrete as ndd

from .helpers import run_demo


UNITS = (ndd.Linear(), ndd.LinearNonLinear(), ndd.IntegrateAndFire(), ndd.SoftMax())
T, S, N = 12, 2, 4


def sparse_network(unit, seed=1):
    """Four units, two sequences' worth of inputs, ~80% of connections present."""
    return ndd.random_network(N, unit=unit, std=0.7, density=0.8, seed=seed)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    inputs = jnp.asarray(rng.normal(size=(S, T, 1)))
    targets = jnp.asarray(rng.normal(size=(S, T, 1)))
    gains = jnp.asarray(rng.uniform(0.5, 1.5, size=(S, T, 1)))
    return inputs, targets, gains


@jax.jit
def tuned_and_autodiff(net, inputs, targets, gains):
    """Backward tuning's gradient (unguarded and guarded) and `jax.grad` of the
    criterion, for the L2 criterion with per-sample gains."""
    criterion = ndd.L2()
    tuning = ndd.tune(net, inputs, targets, gains, criterion=criterion)
    guarded = ndd.tune(
        net, inputs, targets, gains, criterion=criterion, guard=ndd.GuardProfile()
    )

    def loss(w):
        x = ndd.simulate(eqx.tree_at(lambda m: m.weights, net, w), inputs).x
        return criterion.value(x[..., :1], targets, gains)

    return tuning, guarded.gradient, jax.grad(loss)(net.weights)


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unguarded_backward_tuning_is_the_gradient(problem, unit):
    net = sparse_network(unit)
    tuning, guarded, grad = tuned_and_autodiff(net, *problem)
    grad = np.where(np.asarray(net.connectivity), grad, 0.0)
    scale = np.max(np.abs(grad))
    assert scale > 1e-3
    np.testing.assert_allclose(tuning.gradient, grad, rtol=0, atol=1e-12 * scale)
    assert np.all(np.asarray(tuning.gradient)[~np.asarray(net.connectivity)] == 0)
    # The guard only moves values below 2 nu = 2e-6 mean|rho'|: a tiny change here.
    np.testing.assert_allclose(guarded, grad, rtol=0, atol=1e-4 * scale)


def test_guard_argument_shapes_the_backward_pass(problem):
    """`guard=` reaches the recursion: a profile saturating at omega = 0.05 rho-bar'
    bounds every learnware multiplier by omega, where the unguarded ones exceed it,
    and changes the gradient accordingly."""
    inputs, targets, gains = problem
    net = sparse_network(ndd.Linear(), seed=2)
    kwargs = dict(criterion=ndd.L2())
    free = ndd.tune(net, inputs, targets, gains, **kwargs)
    guard = ndd.GuardProfile(low=1e-3, high=0.05)
    tight = ndd.tune(net, inputs, targets, gains, guard=guard, **kwargs)
    rho_prime = jax.grad(
        lambda x: ndd.L2()(x[..., :1], targets, gains, free.reference)
    )(free.traj.x)
    nonzero = np.asarray(rho_prime) != 0
    omega = 0.05 * np.abs(np.asarray(rho_prime))[nonzero].mean()
    assert np.max(np.abs(free.eps_z)) > 2 * omega
    assert np.max(np.abs(tight.eps_z)) <= omega
    assert not np.allclose(tight.gradient, free.gradient, rtol=0.1)


def test_decay_fit_recovers_an_exponential():
    """Footnote 9 on c(t) = 2 exp(-t/5) + 0.3 exactly: tau = 5 and beta = 0.3."""
    t = np.arange(40)
    tau, beta = ndd.decay_fit(2.0 * np.exp(-t / 5.0) + 0.3)
    assert tau == pytest.approx(5.0, rel=1e-10)
    assert beta == pytest.approx(0.3, rel=1e-10)
    assert ndd.decay_fit(np.array([1.0, 0.5])) == (None, None)
    assert ndd.decay_fit(np.linspace(0.0, 1.0, 10)) == (None, None)  # increasing


def test_bptt_adam_is_adam_on_the_bptt_gradient(problem):
    """Three Adam updates (optax's defaults b1 = 0.9, b2 = 0.999, eps = 1e-8),
    written out in NumPy, on central differences of the L2 criterion of a NumPy
    simulation of the linear network (measured: 3e-11 relative on the criterion,
    1e-11 on the weights; tolerances 100x)."""
    inputs, targets, gains = problem
    net = sparse_network(ndd.Linear(), seed=4)
    mask = np.asarray(net.connectivity)
    unit = {"class": "Linear"}
    x_in, y, c = (np.asarray(a) for a in (inputs, targets, gains))

    def criterion(w):
        x = [numpy_simulate(unit, w, mask, x_in[s]) for s in range(len(x_in))]
        e = np.stack(x)[..., :1] - y
        return np.sum(c * 0.5 * e**2) / np.sum(c)

    def gradient(w, eps=1e-6):
        g = np.zeros_like(w)
        for i, j in zip(*np.nonzero(mask)):
            step = np.zeros_like(w)
            step[i, j] = eps
            g[i, j] = (criterion(w + step) - criterion(w - step)) / (2 * eps)
        return g

    lr, w = 0.05, np.where(mask, np.asarray(net.weights), 0.0)
    m, v, values = np.zeros_like(w), np.zeros_like(w), []
    for k in range(1, 4):
        values.append(criterion(w))
        g = gradient(w)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
        w = w - lr * (m / (1 - 0.9**k)) / (np.sqrt(v / (1 - 0.999**k)) + 1e-8)
    run = ndd.bptt_adam(
        net, inputs, targets, gains, learning_rate=lr, tolerance=0.0, max_iterations=3
    )
    assert int(run.iterations) == 3 and not bool(run.converged)
    np.testing.assert_allclose(run.history[:3], values, rtol=3e-9)
    np.testing.assert_allclose(run.value, criterion(w), rtol=3e-9)
    got = np.where(mask, np.asarray(run.network.weights), 0.0)
    np.testing.assert_allclose(got, w, rtol=0, atol=1e-9)


def test_guard_profile_is_eq_5():
    guard = jax.jit(ndd.GuardProfile())
    scale = jnp.asarray(2.0)
    nu, omega = 1e-6 * 2.0, 1e6 * 2.0
    alpha = 1e-3 * omega
    u = jnp.asarray([0.0, 0.5 * nu, 2 * nu, 1.0, omega - alpha, omega, 10 * omega])
    g = np.asarray(guard(u, scale))
    assert g[0] == 0.0
    np.testing.assert_allclose(g[1], nu + (0.5 * nu) ** 2 / (4 * nu), rtol=1e-12)
    np.testing.assert_allclose(g[2:5], u[2:5], rtol=1e-12)
    np.testing.assert_allclose(g[5], omega - alpha * np.exp(-1.0), rtol=1e-12)
    assert omega - alpha < g[6] <= omega
    np.testing.assert_allclose(guard(-u, scale), -g, rtol=1e-12)
    # Continuously differentiable: slope 1 on both joins.
    for join in (2 * nu, omega - alpha):
        slope = jax.grad(lambda v: guard(v, scale))
        np.testing.assert_allclose(slope(join * (1 - 1e-9)), 1.0, rtol=1e-6)
        np.testing.assert_allclose(slope(join * (1 + 1e-9)), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="guard profile"):
        ndd.GuardProfile(low=1.0, high=1.0)


def test_second_order_step_solves_its_least_squares_system(problem):
    inputs, targets, gains = problem
    net = sparse_network(ndd.LinearNonLinear(), seed=3)
    tuning, _, _ = tuned_and_autodiff(net, inputs, targets, gains)
    kappa = 1.0 / float(jnp.sum(gains))
    step = eqx.filter_jit(ndd.second_order_step)(net, tuning.traj, tuning.eps_z, kappa)
    mask = np.asarray(net.connectivity)
    W = np.asarray(net.weights)
    phi = np.asarray(tuning.traj.phi).reshape(-1, W.shape[1])
    eps = np.asarray(tuning.eps_z).reshape(-1, N)
    for n in range(N):
        p = phi[:, mask[n]]
        A = kappa * p.T @ p
        b = A @ W[n, mask[n]] - p.T @ eps[:, n]
        np.testing.assert_allclose(step.A[n][np.ix_(mask[n], mask[n])], A, rtol=1e-12)
        np.testing.assert_allclose(step.b[n][mask[n]], b, rtol=1e-10, atol=1e-14)
        delta = np.asarray(step.delta[n])
        assert np.all(delta[~mask[n]] == 0)
        residual = A @ (W[n, mask[n]] + delta[mask[n]]) - b
        assert np.linalg.norm(residual) <= 1e-8 * np.linalg.norm(b)
        # Minimal distance: the same step as NumPy's minimum-norm least squares.
        least = np.linalg.lstsq(A, b - A @ W[n, mask[n]], rcond=None)[0]
        np.testing.assert_allclose(delta[mask[n]], least, rtol=1e-6, atol=1e-10)


def test_criterion_weights_equal_their_formulas():
    rng = np.random.default_rng(4)
    x, target = rng.normal(size=(2, 50))
    reference = rng.normal(size=50)
    e, e_hat = x - target, reference
    u2 = e**2
    side = np.sign(target - 0.5)
    slack = 0.1 - side * (x - 0.5)
    formulas = {
        ndd.L2(): (np.ones(50), e),
        ndd.ReweightedL1(nu=1e-3): (1 / (1e-3 + np.abs(e_hat)), e),
        ndd.ReweightedL0(nu=1e-3): (1 / (1e-3 + e_hat**2), e),
        ndd.AbsoluteValue(): (1 / np.abs(e), e),
        ndd.Biweight(threshold=1.0): (np.where(u2 < 1, 6 * (1 - u2) ** 2, 0.0), e),
        ndd.Boolean(margin=0.1): (
            (slack > 0).astype(float),
            x - 0.5 - 0.1 * side,
        ),
    }
    args = jnp.asarray(x), jnp.asarray(target), jnp.asarray(reference)

    @eqx.filter_jit
    def evaluate(criterion, x, target, reference):
        derivative = jax.vmap(jax.grad(criterion.cost))(x, target, reference)
        weights = criterion.weights(x, target, reference)
        return weights, criterion.residual(x, target), derivative

    for criterion, (weights, residual) in formulas.items():
        w, r, derivative = evaluate(criterion, *args)
        np.testing.assert_allclose(w, weights, rtol=1e-12)
        np.testing.assert_allclose(r, residual, atol=1e-15)
        np.testing.assert_allclose(derivative, weights * residual, rtol=1e-10)
    # The criterion proper is the normalised gain-weighted mean at reference = e.
    gains = rng.uniform(0, 1, size=(50, 1))
    value = ndd.ReweightedL1().value(
        jnp.asarray(x[:, None]), jnp.asarray(target[:, None]), jnp.asarray(gains)
    )
    cost = 0.5 * e**2 / (1e-3 + np.abs(e))
    np.testing.assert_allclose(value, np.sum(gains[:, 0] * cost) / gains.sum())


def test_observable_fit_is_eq_12():
    rng = np.random.default_rng(5)
    x, target = rng.normal(size=(2, 30, 1))
    criterion = ndd.ObservableFit(lags=(0, 2), multipliers=(1.0, -2.0, 0.5))

    def observables(v):
        return np.array([v.mean(), np.mean(v * v), np.mean(v[2:] * v[:-2])])

    expected = np.sum(
        np.array([1.0, 2.0, 0.5]) * np.abs(observables(target) - observables(x))
    )
    value = criterion.value(jnp.asarray(x), jnp.asarray(target), jnp.ones((30, 1)))
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="one entry per observable"):
        ndd.ObservableFit(lags=(1,), multipliers=(1.0,))


def test_lnl_reverse_engineering_reaches_tolerance():
    """N = 4 LNL units, 20 samples of unit 0 observed: this draw reaches the
    paper's 1e-6 well inside its 101 iterations (not every draw does)."""
    p = ndd.reverse_engineering_problem(ndd.LinearNonLinear(), 4, length=20, seed=7)
    result = ndd.adjust(p.learner, p.inputs, p.targets)
    history = np.asarray(result.history)[: int(result.iterations) + 1]
    assert bool(result.converged)
    assert float(result.value) < 1e-6 < history[0]
    assert int(result.iterations) < 101
    assert np.all(np.diff(history) < 0)
    x = ndd.simulate(result.network, p.inputs).x[:, :1]
    np.testing.assert_allclose(0.5 * np.mean((x - p.targets) ** 2), result.value)


def test_bad_inputs_raise():
    net = sparse_network(ndd.LinearNonLinear())
    with pytest.raises(ValueError, match="`weights` must have shape"):
        ndd.DiscreteNetwork(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="`weights` must be finite"):
        ndd.DiscreteNetwork(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="`connectivity` must be a boolean mask"):
        ndd.DiscreteNetwork(np.zeros((2, 4)), connectivity=np.ones((2, 4)))
    with pytest.raises(ValueError, match="`connectivity` must be a boolean mask"):
        ndd.DiscreteNetwork(np.zeros((2, 4)), connectivity=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="`inputs` must have shape"):
        ndd.simulate(net, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="`inputs` must be finite"):
        ndd.simulate(net, np.full((5, 1), np.inf))
    with pytest.raises(ValueError, match="`targets` must have shape"):
        ndd.adjust(net, np.zeros((5, 1)), np.zeros((6, 1)))
    with pytest.raises(ValueError, match="`gains` must be >= 0"):
        ndd.adjust(net, np.zeros((5, 1)), np.zeros((5, 1)), -np.ones((5, 1)))
    with pytest.raises(ValueError, match="`leak` must be in"):
        ndd.LinearNonLinear(leak=1.0)


# --- The demo's run folder, recomputed with NumPy alone -----------------------------


def numpy_simulate(unit, weights, connectivity, inputs):
    """Eq 1 for the unit types of `neurodyn.discrete`, from `config.json`."""

    def squash(u, low, high):
        half = 0.5 * (high - low)
        return 0.5 * (low + high) + half * np.tanh(u / half)

    def spike(v):
        return squash((v - 0.5) / unit["sharpness"], 0.0, 1.0)

    W = np.where(connectivity, weights, 0.0)
    x, i_prev, xs = np.zeros(W.shape[0]), np.zeros(inputs.shape[1]), []
    for i in inputs:
        pre = spike(x) if unit["class"] == "IntegrateAndFire" else x
        z = W @ np.concatenate([pre, i_prev, [1.0]])
        if unit["class"] == "Linear":
            x = z
        elif unit["class"] == "LinearNonLinear":
            x = unit["leak"] * x + squash(z, unit["low"], unit["high"])
        elif unit["class"] == "IntegrateAndFire":
            x = unit["leak"] * (1 - spike(x)) * x + z
        else:
            x = np.exp(z - z.max()) / np.sum(np.exp(z - z.max()))
        xs.append(x)
        i_prev = i
    return np.array(xs)


def numpy_criterion(criterion, o, target, gains):
    e = o - target
    name = criterion["class"]
    if name == "ObservableFit":

        def observables(v):
            lagged = [np.mean(v[lag:] * v[: len(v) - lag]) for lag in criterion["lags"]]
            return np.array([np.mean(v), *lagged])

        lam = np.abs(criterion["multipliers"] or np.ones(1 + len(criterion["lags"])))
        return np.sum(lam * np.abs(observables(target) - observables(o)))
    costs = {
        "L2": lambda: 0.5 * e**2,
        "ReweightedL1": lambda: 0.5 * e**2 / (criterion.get("nu", 0) + np.abs(e)),
        "ReweightedL0": lambda: 0.5 * e**2 / (criterion.get("nu", 0) + e**2),
        "AbsoluteValue": lambda: np.abs(e),
        "Biweight": lambda: np.where(
            np.abs(e) < criterion.get("threshold", 1.0),
            (u2 := (e / criterion.get("threshold", 1.0)) ** 2) ** 3
            - 3 * u2**2
            + 3 * u2,
            1.0,
        ),
    }
    return np.sum(gains * costs[name]()) / np.sum(gains)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return run_demo(tmp_path_factory, "backward-tuning")


@pytest.mark.slow
def test_demo_run_folder_recomputes_in_numpy(demo_run):
    out, metrics, arrays = demo_run
    params, data = arrays["params"], arrays["data"]
    config = json.loads((out / "config.json").read_text())
    assert set(config["runs"]) == set(metrics["final_criterion"])
    assert len(config["runs"]) >= 7
    for name, run in config["runs"].items():
        x = numpy_simulate(
            run["unit"],
            params[f"{name}__weights"],
            params[f"{name}__connectivity"],
            data[f"{name}__inputs"],
        )
        value = numpy_criterion(
            run["criterion"], x[:, :1], data[f"{name}__targets"], data[f"{name}__gains"]
        )
        expected = metrics["final_criterion"][name]
        assert abs(value - expected) <= 1e-9 * max(abs(expected), 1e-12), name
    for unit, table in metrics["figure6"].items():
        assert len(table["N"]) == len(table["iterations"])
        assert all(1 <= k <= 101 for k in table["iterations"])
        assert len(table["bptt_adam"]["iterations"]) == len(table["N"])
        for i, n in enumerate(table["N"]):
            # the table's numbers are those of the saved criterion history
            history = arrays["history"][f"fig6_{unit}_N{n}__criterion"]
            k = table["iterations"][i]
            assert np.all(np.isfinite(history[: k + 1]))
            assert table["minimal_criterion"][i] == np.nanmin(history)
            final = metrics["final_criterion"][f"fig6_{unit}_N{n}"]
            assert abs(history[k] - final) <= 1e-9 * max(abs(final), 1e-12)
    assert set(metrics["figure9"]) == {"noise", "outliers"}
    assert (out / "criterion_decay.png").stat().st_size > 10_000
    assert "## Figure 9" in (out / "tables.md").read_text()
