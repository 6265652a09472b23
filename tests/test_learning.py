"""Discrete and analog learning: exact update rules, gradient flow, resume."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn._learning import train as train_module
from neurodyn._learning.analog import default_solver

from .helpers import random_network, random_patterns


RELAX = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def problem():
    return random_network(nd.FirstOrderNetwork, scale=1.5), *random_patterns()


def test_deterministic_sgd_is_summed_gradient_descent(problem):
    """Eq 19 with optax.sgd: W <- W - eta * sum_a dE[a]/dW, update for update."""
    net, I, T = problem
    eta, steps = 0.5, 4
    result = nd.train(net, I, T, optimizer=optax.sgd(eta), steps=steps, **RELAX)
    manual, energies = net, []
    for _ in range(steps):
        E, g = nd.value_and_grad(manual, I, T, **RELAX)
        energies.append(float(E))
        manual = eqx.tree_at(
            lambda m: m.weights, manual, manual.weights - eta * g.weights
        )
    assert np.allclose(result.model.weights, manual.weights, rtol=1e-12, atol=1e-14)
    assert np.allclose(result.history.E_total[:steps], energies, rtol=1e-12)
    assert result.history.E_total.shape == (steps + 1,)
    assert np.all(np.asarray(result.history.presented) == 1)


def test_stochastic_mode_follows_its_seed(problem):
    net, I, T = problem
    steps = 8  # seed 3 draws 1, 1, 1, 1, 2, 1, 2, 0: every pattern
    runs = [
        nd.train(
            net,
            I,
            T,
            optimizer=optax.sgd(0.1),
            steps=steps,
            mode="stochastic",
            key=jr.key(seed),
            **RELAX,
        )
        for seed in (3, 3, 4)
    ]
    drawn = [np.argmax(np.asarray(r.history.presented), axis=1) for r in runs]
    expected = [
        int(jr.randint(jr.fold_in(jr.key(3), k), (), 0, 3)) for k in range(steps)
    ]
    assert drawn[0].tolist() == expected
    assert np.array_equal(drawn[0], drawn[1])
    assert not np.array_equal(drawn[0], drawn[2])
    assert set(drawn[0]) == {0, 1, 2}
    assert np.all(np.asarray(runs[0].history.presented).sum(axis=1) == 1)
    # A one-pattern update equals SGD on that pattern's error alone.
    first = drawn[0][0]
    one = nd.train(net, I[first], T[first], optimizer=optax.sgd(0.1), steps=1, **RELAX)
    two = nd.train(
        net,
        I,
        T,
        optimizer=optax.sgd(0.1),
        steps=1,
        mode="stochastic",
        key=jr.key(3),
        **RELAX,
    )
    assert np.allclose(one.model.weights, two.model.weights, rtol=1e-12)


def numpy_bistable_fixed_point(w, i, x0, steps=4000, dt=0.05):
    """Euler steps of dx/dt = -x + logistic(w x) + i from x0, in NumPy."""
    x = x0
    for _ in range(steps):
        x = x + dt * (-x + 1 / (1 + np.exp(-w * x)) + i)
    return x


def test_carry_over_starts_from_the_last_state():
    """One bistable unit, x = logistic(10 x) + I: for I = -0.6 it holds an upper
    (x ~ 0.38) and a lower (x ~ -0.6) attractor, for I = -1.5 only the lower one.
    Fresh relaxations from 0.5 land on the upper one for pattern 0; with
    `reinitialize=False` the second update starts both patterns from the last
    presented pattern's state (-1.5), so pattern 0 lands on the lower one."""
    net = nd.FirstOrderNetwork(np.array([[10.0]]))
    I, T = np.array([[-0.6], [-1.5]]), np.array([[0.5], [-1.5]])
    kwargs = dict(optimizer=optax.sgd(0.0), steps=2, **RELAX)
    fresh = nd.train(net, I, T, **kwargs)
    carried = nd.train(net, I, T, reinitialize=False, **kwargs)
    upper = numpy_bistable_fixed_point(10.0, -0.6, 0.5)
    lower = numpy_bistable_fixed_point(10.0, -0.6, -1.5)
    only = numpy_bistable_fixed_point(10.0, -1.5, 0.5)
    assert upper > 0.3 and lower < -0.5
    expected_fresh = 0.5 * (T[:, 0] - np.array([upper, only])) ** 2
    expected_carried = 0.5 * (T[:, 0] - np.array([lower, only])) ** 2
    E_fresh, E_carried = fresh.history.E_patterns, carried.history.E_patterns
    assert E_fresh.shape == (3, 2)
    # History.E_patterns is E[a] per pattern and E_total their sum.
    assert np.allclose(E_fresh, expected_fresh, rtol=1e-8, atol=1e-12)
    assert np.allclose(E_carried[0], expected_fresh, rtol=1e-8, atol=1e-12)
    assert np.allclose(E_carried[1:], expected_carried, rtol=1e-8, atol=1e-12)
    assert np.allclose(carried.history.E_total, E_carried.sum(axis=1), rtol=1e-14)


def test_resume_equals_uninterrupted(problem, tmp_path, monkeypatch):
    net, I, T = problem
    kwargs = dict(
        optimizer=optax.adam(0.05),
        steps=10,
        mode="stochastic",
        key=jr.key(1),
        snapshot_every=4,
        **RELAX,
    )
    reference = nd.train(net, I, T, **kwargs)

    # Interrupt after 5 updates (as Ctrl-C would), then resume.
    real_update, calls = train_module._update, {"n": 0}

    def interrupted(*args, **kw):
        if calls["n"] == 5:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_update(*args, **kw)

    monkeypatch.setattr(train_module, "_update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nd.train(net, I, T, checkpoint_dir=tmp_path, checkpoint_every=3, **kwargs)
    monkeypatch.setattr(train_module, "_update", real_update)
    assert (tmp_path / "checkpoint.json").read_text() == '{"step": 5}'

    resumed = nd.train(
        net, I, T, checkpoint_dir=tmp_path, checkpoint_every=3, resume=True, **kwargs
    )
    for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(resumed)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_bad_training_arguments(problem):
    net, I, T = problem
    with pytest.raises(ValueError, match="Unknown `mode` 'random'"):
        nd.train(net, I, T, optimizer=optax.sgd(1.0), steps=1, mode="random")
    with pytest.raises(ValueError, match="`steps` must be a non-negative integer"):
        nd.train(net, I, T, optimizer=optax.sgd(1.0), steps=-1)
    with pytest.raises(ValueError, match="`resume=True` needs a `checkpoint_dir`"):
        nd.train(net, I, T, optimizer=optax.sgd(1.0), steps=1, resume=True)
    with pytest.raises(ValueError, match="`eta` must be positive"):
        nd.analog_learning(net, I, T, eta=0.0, t1=1.0)
    with pytest.raises(ValueError, match="`t1` must be positive"):
        nd.analog_learning(net, I, T, eta=0.1, t1=-1.0)


def _gradient_flow(net, I, T, eta, t1, steps):
    """dW/dt = -eta dE/dW by classical RK4 on the fixed-point gradient."""

    def velocity(w):
        m = eqx.tree_at(lambda n: n.weights, net, w)
        return (
            -eta
            * nd.value_and_grad(m, I, T, method=nd.ImplicitDiff(), **RELAX)[1].weights
        )

    w, h = net.weights, t1 / steps
    for _ in range(steps):
        k1 = velocity(w)
        k2 = velocity(w + h / 2 * k1)
        k3 = velocity(w + h / 2 * k2)
        k4 = velocity(w + h * k3)
        w = w + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return w


def test_analog_learning_follows_the_gradient_flow(problem):
    net, I, T = problem
    eta, t1 = 2e-3, 1000.0
    run = nd.analog_learning(
        net, I, T, eta=eta, t1=t1, saveat=jnp.array([0.0, t1]), rtol=1e-8, atol=1e-10
    )
    reference = _gradient_flow(net, I, T, eta, t1, steps=20)
    moved = np.asarray(run.model.weights[-1] - net.weights)
    expected = np.asarray(reference - net.weights)
    assert np.linalg.norm(expected) > 0.1  # the weights did move
    assert np.linalg.norm(moved - expected) / np.linalg.norm(expected) < 0.02
    assert float(run.loss[-1]) < float(run.loss[0])
    assert np.all(np.asarray(run.model.connectivity) == np.asarray(net.connectivity))
    outside = ~np.asarray(net.connectivity)
    assert np.all(moved[outside] == 0)


def test_analog_learning_with_an_implicit_solver(problem):
    net, I, T = problem
    kwargs = dict(eta=0.05, t1=20.0, saveat=jnp.linspace(0, 20.0, 5))
    explicit = nd.analog_learning(net, I, T, **kwargs)
    implicit = nd.analog_learning(net, I, T, solver=diffrax.Kvaerno5(), **kwargs)
    assert np.allclose(implicit.model.weights, explicit.model.weights, atol=1e-5)
    assert np.allclose(implicit.x, explicit.x, atol=1e-5)


def test_default_analog_solver_matches_a_reference_solve(problem):
    """Below eta tau D^2 = 10 the default is implicit; it agrees with a tight
    explicit solve of the same short run."""
    net, I, T = problem
    size = 2 * I.size + net.weights.size  # D = 72: implicit below eta ~ 1.9e-3
    explicit = default_solver(0.1, 1.0, size, I.dtype, 1e-6, 1e-8)
    implicit = default_solver(1e-3, 1.0, size, I.dtype, 1e-6, 1e-8)
    assert isinstance(explicit, diffrax.Tsit5)
    assert isinstance(implicit, diffrax.Kvaerno5)
    eta, t1 = 1e-3, 100.0
    kwargs = dict(eta=eta, t1=t1, saveat=jnp.array([t1]))
    run = nd.analog_learning(net, I, T, **kwargs)
    reference = nd.analog_learning(
        net, I, T, solver=diffrax.Dopri8(), rtol=1e-10, atol=1e-12, **kwargs
    )
    change = np.max(np.abs(reference.model.weights[-1] - net.weights))
    assert change > 1e-3  # the weights did move
    error = np.max(np.abs(run.model.weights[-1] - reference.model.weights[-1]))
    assert error < 1e-4 * change
    assert np.allclose(run.x, reference.x, atol=1e-6)


def test_pattern_schedule_restarts_at_each_switch(problem):
    net, I, T = problem
    schedule = nd.PatternSchedule(jnp.array([0.0, 10.0, 20.0]), jnp.array([2, 0]))
    ts = jnp.array([0.0, 5.0, 10.0, 15.0, 20.0])
    run = nd.analog_learning(net, I, T, eta=0.05, t1=20.0, saveat=ts, schedule=schedule)
    x = np.asarray(run.x)
    assert np.all(np.isfinite(x[:2, 2])) and np.all(np.isnan(x[:2, [0, 1]]))
    assert np.all(np.isfinite(x[2:, 0])) and np.all(np.isnan(x[2:, [1, 2]]))
    assert np.allclose(x[2, 0], 0.5)  # pattern 0 starts afresh at t = 10
    # Weights change continuously across the switch, and only by pattern 2 first.
    alone = nd.analog_learning(
        net, I[2:3], T[2:3], eta=0.05, t1=10.0, saveat=jnp.array([0.0, 10.0])
    )
    assert np.allclose(run.model.weights[2], alone.model.weights[-1], atol=1e-6)
    with pytest.raises(ValueError, match="S\\+1 switch `times` and S `patterns`"):
        nd.PatternSchedule(jnp.array([0.0, 1.0]), jnp.array([0, 1]))
