"""Bad input, fuzzed across the public API: every entry point refuses wrong shapes,
ranks, NaN/inf, empty batches, wrong dtypes and wrong types with a `ValueError` or
`TypeError` that names the argument, raised by neurodyn's own checks (never a
traceback from inside JAX, never a NaN result).

Each entry point is described once (`ENTRY_POINTS`): a valid call on small shared
shapes, and the kind of each argument. Hypothesis then draws an argument and a way
to break it. The checks run before anything is compiled, so this is cheap.
"""

import dataclasses
import inspect
import traceback
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import neurodyn as nd
import neurodyn.discrete as ndd

from .helpers import as_a_user_calls  # noqa: F401 - autouse: neurodyn's own checks


N, P = 3, 2  # units and patterns of every network and batch below (one compilation)
RNG = np.random.default_rng(0)
W = 0.3 * RNG.normal(size=(N, N))
I = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
T = np.full((P, N), 0.5)
X = np.full((P, N), 0.5)
MASK = np.arange(N) == 0


def net():
    return nd.FirstOrderNetwork(W, input_units=MASK, output_units=~MASK)


def rate_net():
    return nd.RateNetwork(W)


def cam():
    return nd.ContentAddressableMemory(0.1 * np.eye(N), np.ones(N, bool))


MEMORIES = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
DNET = ndd.DiscreteNetwork(np.zeros((N, N + 2)))  # one input
INPUTS = np.zeros((4, 1))
TARGETS = np.zeros((4, 1))


# Argument kinds: what a valid value looks like decides how it can be broken.
PATTERNS = "patterns"  # float (N,) or (P, N)
ARRAY = "array"  # a float array of a fixed shape
MASK_KIND = "mask"  # boolean (N,)
POSITIVE = "positive"  # a positive finite number: tolerance, rate, time, tau
NONNEGATIVE = "nonnegative"  # >= 0 and finite
FINITE = "finite"  # any finite real number (a threshold)
COUNT = "count"  # a positive int: steps, iterations
OBJECT = "object"  # a solver, method, mode, rule, unit, criterion, guard, model
NAME = "name"  # a string from a fixed set
CALLABLE = "callable"  # a function (a loss, a callback)


def _nan(value, draw):
    value = np.array(value, dtype=float)
    value.flat[draw(st.integers(0, value.size - 1))] = draw(
        st.sampled_from([np.nan, np.inf, -np.inf])
    )
    return value


BREAKERS: dict[str, dict[str, Callable]] = {
    PATTERNS: {
        "non-finite": _nan,
        "extra rank": lambda v, draw: np.asarray(v)[None, None],
        "wrong length": lambda v, draw: np.asarray(v)[
            ..., : draw(st.integers(0, N - 1))
        ],
        "empty batch": lambda v, draw: np.zeros((0, N)),
        "complex": lambda v, draw: np.asarray(v) + 1j,
        "not an array": lambda v, draw: draw(st.sampled_from(["abc", {"a": 1}])),
    },
    ARRAY: {
        "non-finite": _nan,
        "extra rank": lambda v, draw: np.asarray(v)[None, None],
        "wrong shape": lambda v, draw: np.asarray(v).reshape(-1)[:-1],
        "complex": lambda v, draw: np.asarray(v) + 1j,
        "not an array": lambda v, draw: "abc",
    },
    MASK_KIND: {
        "not boolean": lambda v, draw: np.asarray(v, dtype=float),
        "wrong length": lambda v, draw: np.asarray(v)[:-1],
        "indices": lambda v, draw: np.flatnonzero(v),
    },
    POSITIVE: {
        "zero": lambda v, draw: 0.0,
        "negative": lambda v, draw: -draw(st.floats(1e-3, 1e3)),
        "non-finite": lambda v, draw: draw(st.sampled_from([np.nan, np.inf])),
        "not a number": lambda v, draw: draw(st.sampled_from(["1e-3", [1.0]])),
    },
    NONNEGATIVE: {
        "negative": lambda v, draw: -draw(st.floats(1e-3, 1e3)),
        "non-finite": lambda v, draw: draw(st.sampled_from([np.nan, np.inf])),
        "not a number": lambda v, draw: "0",
    },
    FINITE: {
        "non-finite": lambda v, draw: draw(st.sampled_from([np.nan, np.inf, -np.inf])),
        "not a number": lambda v, draw: draw(st.sampled_from(["0", 1j])),
    },
    COUNT: {
        "zero": lambda v, draw: 0,
        "negative": lambda v, draw: -draw(st.integers(1, 100)),
        "fractional": lambda v, draw: 2.5,
        "not a number": lambda v, draw: draw(st.sampled_from(["10", [3]])),
    },
    OBJECT: {
        "wrong type": lambda v, draw: draw(st.sampled_from(["abc", 3, optax.sgd]))
    },
    CALLABLE: {"not callable": lambda v, draw: draw(st.sampled_from(["abc", 3]))},
    NAME: {"unknown": lambda v, draw: "no-such-name", "wrong type": lambda v, d: 3},
}


@dataclasses.dataclass
class Entry:
    """A valid call `fn(*args, **kwargs)` and the kind of each argument by name
    (positional arguments by their parameter name)."""

    fn: Callable
    args: tuple
    kwargs: dict
    kinds: dict[str, str]
    # (argument, breaker) pairs that are legitimately accepted, with why.
    accepted: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)

    def call(self, name: str, value):
        params = list(inspect.signature(self.fn).parameters)
        args, kwargs = list(self.args), dict(self.kwargs)
        position = params.index(name) if name in params else len(params)
        if position < len(args):
            args[position] = value
        else:
            kwargs[name] = value
        return self.fn(*args, **kwargs)


# The settings themselves are fuzzed through `nd.Relaxation` (which the deprecated
# keywords `solver=`, `rtol=`, ... of every function build too).
RELAXATION_KINDS = {
    "solver": OBJECT,
    "rtol": POSITIVE,
    "atol": POSITIVE,
    "t_max": POSITIVE,
    "max_steps": COUNT,
}
RELAX_KINDS = {
    "I": PATTERNS,
    "x0": PATTERNS,
    "relaxation": OBJECT,
    "model": OBJECT,
}
# What `trajectory` and `adjoint_trajectory` integrate with (not a relaxation).
TRAJECTORY_KINDS = {"I": PATTERNS, "x0": PATTERNS, "model": OBJECT, **RELAXATION_KINDS}


def _without(kinds: dict, *names: str) -> dict:
    return {k: v for k, v in kinds.items() if k not in names}


FP_KINDS = {"model": OBJECT, "fp": PATTERNS, "I": PATTERNS}
SOLVER = nd.ODERelaxation()

LANDSCAPE_KINDS = {
    "model": OBJECT,
    "I": PATTERNS,
    "starts": PATTERNS,
    "tol": POSITIVE,
    "slow_tol": POSITIVE,
    "dedup_tol": POSITIVE,
    "eig_tol": POSITIVE,
    "learning_rate": POSITIVE,
    "max_steps": COUNT,
    "polish_steps": COUNT,
}
LANDSCAPE = nd.Landscape(  # one stable point at the origin, built by hand
    jnp.zeros((1, N)),
    jnp.zeros(1),
    -jnp.ones((1, N), complex),
    jnp.eye(N, dtype=complex)[None],
    jnp.zeros(1, int),
    jnp.ones(1, int),
    ("stable node",),
)

ENTRY_POINTS = {
    # Relaxation, gradients, training.
    "Relaxation": Entry(nd.Relaxation, (), {}, RELAXATION_KINDS),
    "relax": Entry(nd.relax, (net(), I), {}, RELAX_KINDS),
    "value_and_grad": Entry(
        nd.value_and_grad,
        (net(), I, T),
        {},
        {**RELAX_KINDS, "T": PATTERNS, "method": OBJECT},
    ),
    "train": Entry(
        nd.train,
        (net(), I, T),
        dict(optimizer=optax.sgd(0.1), steps=1),
        {
            **RELAX_KINDS,
            "T": PATTERNS,
            "method": OBJECT,
            "optimizer": OBJECT,
            "steps": COUNT,
            "mode": NAME,
            "checkpoint_every": COUNT,
            "snapshot_every": COUNT,
            "rule": OBJECT,
            "callback": CALLABLE,
            "regularizer": OBJECT,
        },
        accepted={("steps", "zero"): "zero updates is a valid (empty) run"},
    ),
    "analog_learning": Entry(
        nd.analog_learning,
        (net(), I, T),
        dict(eta=0.1, t1=1.0),
        {
            "model": OBJECT,
            "I": PATTERNS,
            "T": PATTERNS,
            "x0": PATTERNS,
            "eta": POSITIVE,
            "t1": POSITIVE,
            "saveat": ARRAY,
            "solver": OBJECT,
            "method": OBJECT,
            "schedule": OBJECT,
            "rtol": POSITIVE,
            "atol": POSITIVE,
            "max_steps": COUNT,
            "relaxation": OBJECT,
        },
    ),
    "learning_velocities": Entry(
        nd.learning_velocities,
        (net(), X, I, X, X),
        {},
        {"model": OBJECT, "x": PATTERNS, "z": PATTERNS, "J": PATTERNS},
    ),
    "SlowManifold": Entry(
        nd.SlowManifold,
        (),
        {},
        {"order": COUNT, "layer": POSITIVE, "solver": OBJECT},
        accepted={("order", "zero"): "order 0 is the gradient flow"},
    ),
    "FullSystem": Entry(nd.FullSystem, (), {}, {"solver": OBJECT}),
    "ContinualEP": Entry(
        nd.ContinualEP, (0.1,), {}, {"beta": POSITIVE, "solver": OBJECT}
    ),
    "rule_direction": Entry(
        nd.rule_direction,
        (nd.DW1(), rate_net(), I, T),
        dict(weights=np.full(P, 0.5)),
        {
            **RELAX_KINDS,
            "rule": OBJECT,
            "T": PATTERNS,
            "weights": ARRAY,
            "method": OBJECT,
            "loss": CALLABLE,
        },
    ),
    "trajectory": Entry(
        nd.trajectory,
        (net(), I, np.linspace(0.0, 1.0, 3)),
        {},
        {**_without(TRAJECTORY_KINDS, "t_max"), "ts": ARRAY, "atol": POSITIVE},
        accepted={("ts", "wrong shape"): "two increasing times are valid times"},
    ),
    "adjoint_trajectory": Entry(
        nd.adjoint_trajectory,
        (net(), X, I, T, np.linspace(0.0, 1.0, 3)),
        {},
        {
            **_without(TRAJECTORY_KINDS, "t_max", "x0"),
            "x": PATTERNS,
            "T": PATTERNS,
            "ts": ARRAY,
            "atol": POSITIVE,
        },
        accepted={("ts", "wrong shape"): "two increasing times are valid times"},
    ),
    # Vector fields (one pattern).
    "forward_field": Entry(
        nd.forward_field, (net(), X[0], I[0]), {}, {"model": OBJECT, "x": PATTERNS}
    ),
    "adjoint_field": Entry(
        nd.adjoint_field,
        (net(), X[0], I[0], X[0], X[0]),
        {},
        {"model": OBJECT, "x": PATTERNS, "z": PATTERNS, "J": PATTERNS},
    ),
    "parameter_cotangent": Entry(
        nd.parameter_cotangent,
        (net(), X, I, X),
        {},
        {"model": OBJECT, "x": PATTERNS, "z": PATTERNS},
    ),
    # Analysis.
    "spectrum": Entry(nd.spectrum, (net(), X, I), {}, FP_KINDS),
    "adjoint_spectrum": Entry(nd.adjoint_spectrum, (net(), X, I), {}, FP_KINDS),
    "linearisation": Entry(nd.linearisation, (net(), X, I), {}, FP_KINDS),
    "almeida_check": Entry(nd.almeida_check, (net(), X, I), {}, FP_KINDS),
    "spectral_distance": Entry(
        nd.spectral_distance,
        (np.ones((P, N)), np.ones((P, N))),
        {},
        {"a": ARRAY, "b": ARRAY},
        accepted={("a", "complex"): "eigenvalues", ("b", "complex"): "eigenvalues"},
    ),
    "hessian": Entry(
        nd.hessian,
        (net(), I, T),
        {},
        {**RELAX_KINDS, "T": PATTERNS, "wrt": CALLABLE},
    ),
    "hessian_vector_product": Entry(
        nd.hessian_vector_product,
        (net(), I, T, W),
        {},
        {
            **RELAX_KINDS,
            "T": PATTERNS,
            "v": ARRAY,
            "wrt": CALLABLE,
        },
    ),
    "hessian_along": Entry(
        nd.hessian_along,
        (jax.tree.map(lambda a: jnp.stack([a, a]), net()), I, T),
        {},
        {
            "models": OBJECT,
            "I": PATTERNS,
            "T": PATTERNS,
            "x0": PATTERNS,
            "relaxation": OBJECT,
        },
    ),
    "hessian_eigenvalues": Entry(
        nd.hessian_eigenvalues, (np.eye(4),), {}, {"H": ARRAY}
    ),
    "stability_along": Entry(
        nd.stability_along,
        (jax.tree.map(lambda a: jnp.stack([a, a]), net()), I),
        dict(steps=np.arange(2.0)),
        {
            "I": PATTERNS,
            "x0": PATTERNS,
            "newton_iterations": COUNT,
            "tol": FINITE,
            "relaxation": OBJECT,
        },
    ),
    "first_stability_loss": Entry(
        nd.first_stability_loss,
        (np.arange(3.0), -np.ones((3, P), complex)),
        {},
        {"steps": ARRAY, "tol": FINITE, "imag_tol": NONNEGATIVE},
    ),
    "StabilityMonitor": Entry(
        nd.StabilityMonitor,
        (I,),
        {},
        {
            "I": PATTERNS,
            "x0": PATTERNS,
            "on_loss": NAME,
            "tol": FINITE,
            "newton_iterations": COUNT,
            "relaxation": OBJECT,
        },
        accepted={("I", "wrong length"): "the monitor learns N at its first call"},
    ),
    # Models.
    "FirstOrderNetwork": Entry(
        nd.FirstOrderNetwork,
        (W,),
        {},
        {
            "weights": ARRAY,
            "activation": NAME,
            "input_units": MASK_KIND,
            "output_units": MASK_KIND,
            "tau": POSITIVE,
        },
    ),
    "RateNetwork": Entry(
        nd.RateNetwork,
        (W,),
        {},
        {"weights": ARRAY, "activation": NAME, "tau": POSITIVE},
    ),
    "HigherOrderNetwork": Entry(
        nd.HigherOrderNetwork,
        (np.zeros((N, N, N)),),
        {},
        {"weights": ARRAY, "activation": NAME, "inner": NAME, "tau": POSITIVE},
    ),
    "ContentAddressableMemory": Entry(
        nd.ContentAddressableMemory,
        (np.zeros((N, N)), MASK),
        {},
        {"weights": ARRAY, "visible_units": MASK_KIND, "tau": POSITIVE},
    ),
    "implicit_network": Entry(
        nd.implicit_network,
        (2, [2, 1]),
        dict(key=jax.random.key(0)),
        {"n_inputs": COUNT, "scale": POSITIVE, "activation": NAME},
    ),
    "activation_by_name": Entry(nd.activation_by_name, ("tanh",), {}, {"name": NAME}),
    # Content-addressable memory.
    "cue_state": Entry(
        nd.cue_state,
        (cam(), MEMORIES, MASK),
        {},
        {"cam": OBJECT, "cue": PATTERNS, "known": MASK_KIND, "fill": ARRAY},
    ),
    "memory_start": Entry(
        nd.memory_start, (cam(), MEMORIES), {}, {"cam": OBJECT, "memories": PATTERNS}
    ),
    "nearest_memory": Entry(
        nd.nearest_memory,
        (cam(), MEMORIES, MEMORIES),
        {},
        {"cam": OBJECT, "x": PATTERNS, "memories": PATTERNS, "tol": NONNEGATIVE},
    ),
    "recall": Entry(
        nd.recall,
        (cam(), MEMORIES, MASK, MEMORIES),
        {},
        {
            "cam": OBJECT,
            "cue": PATTERNS,
            "known": MASK_KIND,
            "memories": PATTERNS,
            "tol": NONNEGATIVE,
            "relaxation": OBJECT,
        },
    ),
    # Solvers, methods and schedules.
    "Anderson": Entry(
        nd.Anderson,
        (),
        {},
        {"memory": COUNT, "damping": POSITIVE, "patience": COUNT},
    ),
    "FixedPointIteration": Entry(
        nd.FixedPointIteration, (), {}, {"damping": POSITIVE, "patience": COUNT}
    ),
    "NewtonKrylov": Entry(
        nd.NewtonKrylov, (), {}, {"restart": COUNT, "krylov_max_steps": COUNT}
    ),
    "ODERelaxation": Entry(
        nd.ODERelaxation, (), {}, {"solver": OBJECT, "dt0": POSITIVE}
    ),
    "Fallback": Entry(
        lambda *solvers: nd.Fallback(*solvers), (SOLVER,), {}, {"solvers": OBJECT}
    ),
    "DW2": Entry(nd.DW2, (0.1,), {}, {"learning_rate": POSITIVE}),
    "PatternSchedule": Entry(
        nd.PatternSchedule,
        (np.array([0.0, 1.0, 2.0]), np.array([0, 1])),
        {},
        {"times": ARRAY},
    ),
    "shard_patterns": Entry(
        lambda *arrays: nd.shard_patterns(*arrays),
        (I,),
        {},
        {"arrays": PATTERNS},
        accepted={
            ("arrays", why): "any array can be sharded by its first axis"
            for why in ("complex", "extra rank", "wrong length")
        },
    ),
    # Discrete-time networks.
    "DiscreteNetwork": Entry(
        ndd.DiscreteNetwork,
        (np.zeros((N, N + 2)),),
        {},
        {"weights": ARRAY, "n_inputs": COUNT, "unit": OBJECT},
    ),
    "random_network": Entry(
        ndd.random_network,
        (N,),
        {},
        {
            "unit": OBJECT,
            "n_units": COUNT,
            "n_inputs": COUNT,
            "std": POSITIVE,
            "density": POSITIVE,
        },
        accepted={("n_inputs", "zero"): "a network without inputs is valid"},
    ),
    "simulate": Entry(
        ndd.simulate, (DNET, INPUTS), {}, {"net": OBJECT, "inputs": ARRAY}
    ),
    "adjust": Entry(
        ndd.adjust,
        (DNET, INPUTS, TARGETS),
        {},
        {
            "net": OBJECT,
            "inputs": ARRAY,
            "targets": ARRAY,
            "gains": ARRAY,
            "criterion": OBJECT,
            "guard": OBJECT,
            "tolerance": NONNEGATIVE,
            "max_iterations": COUNT,
        },
    ),
    "bptt_adam": Entry(
        ndd.bptt_adam,
        (DNET, INPUTS, TARGETS),
        {},
        {
            "net": OBJECT,
            "inputs": ARRAY,
            "targets": ARRAY,
            "gains": ARRAY,
            "criterion": OBJECT,
            "learning_rate": POSITIVE,
            "tolerance": NONNEGATIVE,
            "max_iterations": COUNT,
        },
    ),
    "reverse_engineering_problem": Entry(
        ndd.reverse_engineering_problem,
        (ndd.Linear(), N),
        dict(length=5),
        {
            "unit": OBJECT,
            "n_units": COUNT,
            "length": COUNT,
            "noise": NONNEGATIVE,
            "density": POSITIVE,
        },
    ),
    "decay_fit": Entry(
        ndd.decay_fit,
        (np.geomspace(1.0, 1e-3, 10),),
        {},
        {"history": ARRAY, "fraction": POSITIVE},
        accepted={
            ("history", "non-finite"): "a failed run records NaN; the fit skips it",
            ("history", "wrong shape"): "a shorter history is still a history",
        },
    ),
    "observed": Entry(
        ndd.observed,
        (np.zeros((4, N)), 1),
        {},
        {"x": ARRAY, "n_outputs": COUNT},
        accepted={("x", "extra rank"): "leading axes are batches of sequences"},
    ),
    "pseudo_inverse": Entry(
        ndd.pseudo_inverse, (np.eye(2),), {}, {"A": ARRAY, "rtol": NONNEGATIVE}
    ),
    "Biweight": Entry(ndd.Biweight, (), {}, {"threshold": POSITIVE}),
    "Boolean": Entry(ndd.Boolean, (), {}, {"margin": POSITIVE}),
    "ReweightedL1": Entry(ndd.ReweightedL1, (), {}, {"nu": POSITIVE}),
    "ReweightedL0": Entry(ndd.ReweightedL0, (), {}, {"nu": POSITIVE}),
    "GuardProfile": Entry(
        ndd.GuardProfile,
        (),
        {},
        {"low": POSITIVE, "high": POSITIVE, "softness": NONNEGATIVE},
    ),
    "IntegrateAndFire": Entry(
        ndd.IntegrateAndFire, (), {}, {"leak": NONNEGATIVE, "sharpness": POSITIVE}
    ),
    "LinearNonLinear": Entry(ndd.LinearNonLinear, (), {}, {"leak": NONNEGATIVE}),
    "find_fixed_points": Entry(
        nd.find_fixed_points, (net(), I[0]), dict(starts=X), LANDSCAPE_KINDS
    ),
    "fixed_points_along": Entry(
        nd.fixed_points_along,
        (jax.tree.map(lambda a: jnp.stack([a, a]), net()), I[0]),
        dict(starts=X, steps=np.arange(2.0)),
        {**_without(LANDSCAPE_KINDS, "model"), "source": OBJECT, "match_tol": POSITIVE},
    ),
    "starts_near": Entry(
        nd.starts_near,
        (X, 5),
        {},
        {"states": ARRAY, "count": COUNT, "noise": NONNEGATIVE},
        accepted={("states", "extra rank"): "leading axes are batches of states"},
    ),
    "unstable_manifolds": Entry(
        nd.unstable_manifolds,
        (net(), I[0], LANDSCAPE),
        {},
        {
            "model": OBJECT,
            "I": PATTERNS,
            "landscape": OBJECT,
            "eps": POSITIVE,
            "t1": POSITIVE,
            "num_times": COUNT,
        },
    ),
    "memory_landscape": Entry(
        nd.memory_landscape,
        (cam(), MEMORIES, LANDSCAPE),
        {},
        {
            "cam": OBJECT,
            "memories": PATTERNS,
            "landscape": OBJECT,
            "manifolds": OBJECT,
            "tol": POSITIVE,
        },
    ),
    "EnergyNetwork": Entry(
        nd.EnergyNetwork,
        (W,),
        {},
        {
            "weights": ARRAY,
            "activation": NAME,
            "input_units": MASK_KIND,
            "output_units": MASK_KIND,
            "tau": POSITIVE,
        },
    ),
    "EquilibriumPropagation": Entry(
        nd.EquilibriumPropagation, (0.1,), {}, {"beta": POSITIVE}
    ),
    "PhantomGradient": Entry(
        nd.PhantomGradient, (3, 0.5), {}, {"steps": COUNT, "damping": POSITIVE}
    ),
    "JacobianPenalty": Entry(
        nd.JacobianPenalty, (0.1,), {}, {"strength": NONNEGATIVE, "probes": COUNT}
    ),
    "compare_directions": Entry(
        nd.compare_directions,
        (net(), I, T),
        dict(methods=[nd.SemiGradient()], repeats=1),
        {
            **RELAX_KINDS,
            "T": PATTERNS,
            "methods": OBJECT,
            "reference": OBJECT,
            "repeats": COUNT,
        },
    ),
    "jacobian_norm": Entry(
        nd.jacobian_norm,
        (net(), I, T),
        dict(key=jax.random.key(0)),
        {
            **RELAX_KINDS,
            "T": PATTERNS,
            "key": OBJECT,
            "probes": COUNT,
            "method": OBJECT,
        },
    ),
}

# Public names that are not entry points for bad input, with the reason.
NOT_ENTRY_POINTS = {
    # Results and records: built by the library, not from user input.
    **dict.fromkeys(
        [
            "AnalogRun",
            "FixedPoint",
            "History",
            "TrainResult",
            "Recall",
            "StabilityLoss",
            "StabilityTrace",
            "Landscape",
            "LandscapeEvent",
            "LandscapeTrace",
            "UnstableManifolds",
            "RESULTS",
            "AdamRun",
            "Adjustment",
            "Problem",
            "SecondOrderStep",
            "Trajectory",
            "Tuning",
            "Clamped",
            "ImplicitLayer",
            "ImplicitRecurrentNetwork",
            "Direction",
        ],
        "a result or building block made by the library",
    ),
    # Element-wise activation functions: any array in, same shape out.
    **dict.fromkeys(
        ["identity", "logistic", "sin", "softplus", "tanh", "Activation"],
        "element-wise math on any array",
    ),
    # Argument-free strategy objects: nothing to get wrong.
    **dict.fromkeys(
        [
            "RecurrentBackprop",
            "ImplicitDiff",
            "UnrolledBPTT",
            "SemiGradient",
            "DW1",
            "DW3",
            "Deterministic",
            "Stochastic",
            "RK4",
            "L2",
            "AbsoluteValue",
            "ObservableFit",
            "Unguarded",
            "Linear",
            "SoftMax",
        ],
        "a strategy object with no array or numeric argument to check",
    ),
    "pattern_sharding": "takes the devices JAX reports",
    "learning_field": "a diffrax vector field called by `analog_learning`",
    "line_search": "an inner step of `adjust`, called with its own arrays",
    "second_order_step": "an inner step of `adjust`",
    "weight_gradient": "an inner step of `adjust`",
    "backward_tuning": "an inner step of `tune`",
    "tune": "called by `adjust`, which checks its arguments",
}


def _public_callables(module) -> set[str]:
    return {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and callable(obj)
        and not inspect.ismodule(obj)
        and not (inspect.isclass(obj) and inspect.isabstract(obj))
    }


def test_every_public_entry_point_is_fuzzed():
    """A new public function must join ENTRY_POINTS (or say why it is not one)."""
    public = _public_callables(nd) | _public_callables(ndd)
    missing = public - set(ENTRY_POINTS) - set(NOT_ENTRY_POINTS)
    assert not missing, f"add these to ENTRY_POINTS in {__file__}: {sorted(missing)}"
    assert not (set(ENTRY_POINTS) | set(NOT_ENTRY_POINTS)) - public


def test_entry_points_fuzz_real_arguments():
    for name, entry in ENTRY_POINTS.items():
        params = inspect.signature(entry.fn).parameters
        if not any(p.kind is p.VAR_POSITIONAL for p in params.values()):
            assert set(entry.kinds) <= set(params), (
                name,
                set(entry.kinds) - set(params),
            )


def _raised_by_neurodyn(error: BaseException) -> bool:
    """`error` comes from neurodyn's own checks, not from inside JAX, its libraries
    or the jaxtyping check of an annotation (which a user does not run)."""
    innermost = traceback.extract_tb(error.__traceback__)[-1].filename
    return "/neurodyn/" in innermost


def _finite_leaves(result) -> bool:
    leaves = [leaf for leaf in jax.tree.leaves(result) if hasattr(leaf, "dtype")]
    return all(
        bool(np.all(np.isfinite(np.asarray(leaf))))
        for leaf in leaves
        if jnp.issubdtype(leaf.dtype, jnp.inexact)
    )


def check_refused(entry: Entry, name: str, breaker: str, value) -> None:
    try:
        result = entry.call(name, value)
    except (ValueError, TypeError) as error:
        message = str(error)
        assert f"`{name}`" in message or f"'{name}'" in message, (
            f"{breaker} `{name}`: the message does not name the argument: {message!r}"
        )
        assert _raised_by_neurodyn(error), (
            f"{breaker} `{name}` was refused from inside a library, not by neurodyn: "
            f"{''.join(traceback.format_exception(error)[-3:])}"
        )
        return
    except Exception as error:  # noqa: BLE001 - the point is to report it
        pytest.fail(
            f"{breaker} `{name}` raised {type(error).__name__}, not a ValueError or "
            f"TypeError naming the argument: {str(error)[:300]}"
        )
    if (name, breaker) in entry.accepted:
        assert _finite_leaves(result), f"{breaker} `{name}` gave a NaN result"
        return
    pytest.fail(
        f"{breaker} `{name}` was accepted (result finite: {_finite_leaves(result)})"
    )


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported, not shrunk
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
@pytest.mark.parametrize("entry_name", sorted(ENTRY_POINTS))
def test_bad_input_is_refused_by_name(entry_name, data):
    entry = ENTRY_POINTS[entry_name]
    name = data.draw(st.sampled_from(sorted(entry.kinds)), label="argument")
    breakers = BREAKERS[entry.kinds[name]]
    breaker = data.draw(st.sampled_from(sorted(breakers)), label="breaker")
    value = breakers[breaker](
        entry.kwargs.get(name, _valid_value(entry, name)), data.draw
    )
    check_refused(entry, name, breaker, value)


def _valid_value(entry: Entry, name: str):
    params = list(inspect.signature(entry.fn).parameters)
    if name in params and params.index(name) < len(entry.args):
        return entry.args[params.index(name)]
    kind = entry.kinds[name]
    return {PATTERNS: X, ARRAY: np.ones(3), MASK_KIND: MASK}.get(kind, 1.0)
