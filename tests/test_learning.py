"""Discrete and analog learning: exact update rules, gradient flow, resume."""

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn._learning import train as train_module

from .helpers import QUICK, random_network, random_patterns


RELAX = QUICK
# `nd.train` compiles its update for each optimizer object (optax's transformations
# are closures, hashed by identity): one object per setting shares that compilation.
SGD = optax.sgd(0.1)


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
            optimizer=SGD,
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
    one = nd.train(net, I[first], T[first], optimizer=SGD, steps=1, **RELAX)
    two = nd.train(
        net,
        I,
        T,
        optimizer=SGD,
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
        nd.train(net, I, T, optimizer=SGD, steps=1, mode="random")
    with pytest.raises(ValueError, match="`steps` must be a non-negative integer"):
        nd.train(net, I, T, optimizer=SGD, steps=-1)
    with pytest.raises(ValueError, match="`resume=True` needs a `checkpoint_dir`"):
        nd.train(net, I, T, optimizer=SGD, steps=1, resume=True)
    # a rule replaces the gradient that would carry the penalty: refused, not dropped
    with pytest.raises(ValueError, match="give one of them, not both"):
        nd.train(
            net,
            I,
            T,
            optimizer=SGD,
            steps=1,
            rule=nd.DW2(0.1),
            regularizer=nd.JacobianPenalty(0.1),
        )
