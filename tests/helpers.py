"""Shared test utilities: random networks, tolerances, finite differences."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest

import neurodyn as nd


# Tight tolerances for float64 gradient checks: the fixed point is then accurate to
# ~1e-13, so central differences with step 1e-5 are accurate to ~1e-9.
TIGHT = dict(rtol=1e-12, atol=1e-14)

METHODS = (nd.RecurrentBackprop(), nd.ImplicitDiff(), nd.UnrolledBPTT())
# The adjoint methods: every model's default-tier gradient checks. UnrolledBPTT
# (an ODE solve differentiated step by step, the costliest to compile) is checked
# for every model in the slow tier, and for the first-order network in both.
ADJOINT_METHODS = METHODS[:2]


def method_names() -> list:
    """The names of `METHODS` as pytest parameters, UnrolledBPTT's in the slow tier."""
    return [
        pytest.param(name, marks=() if name != "UnrolledBPTT" else pytest.mark.slow)
        for name in (type(m).__name__ for m in METHODS)
    ]


class Gradients(dict):
    """`(E, grads)` of one problem by method name: the adjoint methods' at once,
    UnrolledBPTT's on first use (from a slow-tier test)."""

    def __init__(self, compute):
        super().__init__({type(m).__name__: compute(m) for m in ADJOINT_METHODS})
        self._compute = compute

    def __missing__(self, name):
        (method,) = (m for m in METHODS if type(m).__name__ == name)
        self[name] = value = self._compute(method)
        return value


def quick(method=None) -> dict:
    """`relaxation=`: `TIGHT` with one steady-state strategy in place of the default
    chain: Anderson acceleration, or the ODE relaxation for `UnrolledBPTT` (which
    differentiates through the ODE solver's steps).

    Tests of gradient methods, models and analyses relax with this: the strategy is
    not what they test, and one strategy compiles in about a third of the time of
    `Fallback(FixedPointIteration, Anderson, ODERelaxation)` (measured: first
    `value_and_grad` with RecurrentBackprop 5.6 against 15.8 CPU-s). The default
    chain is tested in test_solvers.py and test_relax.py, with its gradient against
    a NumPy reference (`test_solver_gives_the_reference_gradient[...-default]`).
    """
    ode = isinstance(method, nd.UnrolledBPTT)
    solver = nd.ODERelaxation() if ode else nd.Anderson()
    return dict(relaxation=nd.Relaxation(solver, **TIGHT))


QUICK = quick()


def quick_relaxation(method=None) -> nd.Relaxation:
    """The relaxation `quick(method)` asks for, for tests that relax fields
    themselves."""
    return quick(method)["relaxation"]


NETWORK_CLASSES = (nd.FirstOrderNetwork, nd.RateNetwork)


def relative_error(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def random_network(cls, n=6, *, seed=0, scale=0.8, activation=nd.logistic, tau=1.0):
    """A network with 3 input units, 2 output units (one also an input) and ~70%
    of connections present."""
    rng = np.random.default_rng(seed)
    weights = scale * rng.normal(size=(n, n)) / np.sqrt(n)
    connectivity = rng.random((n, n)) < 0.7
    input_units = np.arange(n) < 3
    output_units = np.arange(n) >= n - 2
    output_units[0] = True
    return cls(
        weights,
        activation=activation,
        input_units=input_units,
        output_units=output_units,
        connectivity=connectivity,
        tau=tau,
    )


def random_patterns(n=6, p=3, *, seed=1):
    rng = np.random.default_rng(seed)
    return (
        jnp.asarray(rng.uniform(-1, 1, size=(p, n))),
        jnp.asarray(rng.uniform(0.1, 0.9, size=(p, n))),
    )


def finite_difference_grad(loss, weights, eps=1e-5):
    """Central differences of `loss(weights)` over every entry, in one vmapped call."""
    basis = jnp.eye(weights.size, dtype=weights.dtype).reshape(-1, *weights.shape)
    plus = jax.vmap(loss)(weights[None] + eps * basis)
    minus = jax.vmap(loss)(weights[None] - eps * basis)
    return ((plus - minus) / (2 * eps)).reshape(weights.shape)


def weights_loss(model, I, T, **relax_options):
    """E as a function of the weights alone (for finite differences)."""

    def loss(w):
        m = eqx.tree_at(lambda net: net.weights, model, w)
        x = nd.relax(m, I, **relax_options).x
        return 0.5 * jnp.sum(jax.vmap(m.error)(x, T) ** 2)

    return loss


def run_demo(tmp_path_factory, name):
    """Run `neurodyn demo NAME --small` into a fresh folder; return the folder, its
    metrics and every `.npz` in it (by file stem) as dicts of arrays."""
    from neurodyn.cli import main

    out = tmp_path_factory.mktemp("runs") / name
    assert main(["demo", name, "--out", str(out), "--small"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    arrays = {f.stem: dict(np.load(f)) for f in out.glob("*.npz")}
    return out, metrics, arrays


@pytest.fixture(autouse=True)
def as_a_user_calls():
    """Autouse in every module that imports it: each call meets neurodyn's own
    checks, as a user's does. The jaxtyping check that pyproject's `addopts` puts
    around neurodyn's functions is off (it would refuse a wrong type first, with its
    own message)."""
    before = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", before)
