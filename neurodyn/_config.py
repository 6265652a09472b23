"""Training runs described by a JSON file, checked key by key (`neurodyn train`)."""

import functools
import json
import math
import pathlib

import jax.random as jr
import numpy as np
import optax

from ._activations import ACTIVATIONS
from ._gradients import ImplicitDiff, RecurrentBackprop, UnrolledBPTT
from ._learning.modes import MODES
from ._models.first_order import FirstOrderNetwork, RateNetwork


MODEL_CLASSES = {"FirstOrderNetwork": FirstOrderNetwork, "RateNetwork": RateNetwork}
METHODS = {
    "RecurrentBackprop": RecurrentBackprop,
    "ImplicitDiff": ImplicitDiff,
    "UnrolledBPTT": UnrolledBPTT,
}
OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam, "rmsprop": optax.rmsprop}

# key: (type, required, allowed values or None)
SCHEMA = {
    "model": (dict, True, None),
    "patterns": (dict, True, None),
    "optimizer": (dict, True, None),
    "steps": (int, True, None),
    "mode": (str, False, sorted(MODES)),
    "method": (str, False, sorted(METHODS)),
    "seed": (int, False, None),
    "checkpoint_every": (int, False, None),
    "sweep": (dict, False, None),
}
MODEL_SCHEMA = {
    "class": (str, False, sorted(MODEL_CLASSES)),
    "n_units": (int, True, None),
    "activation": (str, False, sorted(ACTIVATIONS)),
    "input_units": (list, False, None),
    "output_units": (list, False, None),
    "weight_scale": ((int, float), False, None),
    "tau": ((int, float), False, None),
}
PATTERN_SCHEMA = {"I": (list, True, None), "T": (list, True, None)}
OPTIMIZER_SCHEMA = {
    "name": (str, True, sorted(OPTIMIZERS)),
    "learning_rate": ((int, float), True, None),
}


def _check(section: str, content: dict, schema: dict) -> dict:
    where = f"config {section}" if section else "config"
    unknown = sorted(set(content) - set(schema))
    if unknown:
        raise ValueError(
            f"Unknown {where} key {unknown[0]!r}; expected keys: {', '.join(schema)}."
        )
    for key, (kind, required, allowed) in schema.items():
        if key not in content:
            if required:
                raise ValueError(f"Missing {where} key {key!r}.")
            continue
        value = content[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = " or ".join(k.__name__ for k in kinds)
            raise ValueError(
                f"{where} key {key!r} must be {expected}, got {type(value).__name__} "
                f"{value!r}."
            )
        if allowed is not None and value not in allowed:
            raise ValueError(
                f"{where} key {key!r} is {value!r}; expected one of {allowed}."
            )
    return content


def load_config(path: pathlib.Path) -> dict:
    try:
        content = json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"Config file {str(path)!r} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Config file {str(path)!r} is not valid JSON: {e}.") from None
    except OSError as e:
        raise ValueError(f"Config file {str(path)!r} cannot be read: {e}.") from None
    return check_config(content)


def check_config(content) -> dict:
    """`content` if it is a valid run config, else a one-line `ValueError`."""
    if not isinstance(content, dict):
        raise ValueError("The config must be a JSON object.")
    _check("", content, SCHEMA)
    _check("model", content["model"], MODEL_SCHEMA)
    _check("patterns", content["patterns"], PATTERN_SCHEMA)
    _check("optimizer", content["optimizer"], OPTIMIZER_SCHEMA)
    _check_values(content)
    return content


def _check_values(content: dict) -> None:
    """The values a schema's types cannot express: signs, finiteness, shapes."""
    positive = [
        ("", "checkpoint_every", content.get("checkpoint_every", 1)),
        ("model ", "n_units", content["model"]["n_units"]),
        ("model ", "tau", content["model"].get("tau", 1.0)),
        ("optimizer ", "learning_rate", content["optimizer"]["learning_rate"]),
    ]
    for section, key, value in positive:
        if not (0 < value < math.inf):
            raise ValueError(
                f"config {section}key {key!r} must be positive and finite, got "
                f"{value!r}."
            )
    for key in ("steps", "seed"):
        if content.get(key, 0) < 0:
            raise ValueError(f"config key {key!r} must be >= 0, got {content[key]}.")
    if not math.isfinite(content["model"].get("weight_scale", 0.0)):
        raise ValueError("config model key 'weight_scale' must be finite.")
    n = content["model"]["n_units"]
    shapes = []
    for key in ("I", "T"):
        rows = content["patterns"][key]
        try:
            array = np.asarray(rows, dtype=float)
        except (TypeError, ValueError):
            array = np.zeros(0)
        if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] != n:
            raise ValueError(
                f"config patterns key {key!r} must be a non-empty list of lists of "
                f"{n} numbers (one per unit, n_units = {n})."
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"config patterns key {key!r} must hold finite numbers.")
        shapes.append(array.shape)
    if shapes[0] != shapes[1]:
        raise ValueError(
            "config patterns 'I' and 'T' must hold as many patterns, got "
            f"{shapes[0][0]} and {shapes[1][0]}."
        )


# Keys a resumed run may change: neither alters update k of the run.
RESUMABLE_CHANGES = ("steps", "checkpoint_every")


def check_same_run(saved: dict, config: dict, folder: pathlib.Path) -> None:
    """Refuse to resume the run in `folder`, started from `saved`, with a `config`
    that differs in anything but `RESUMABLE_CHANGES`."""
    for key in sorted(set(saved) | set(config)):
        if key not in RESUMABLE_CHANGES and saved.get(key) != config.get(key):
            raise ValueError(
                f"{str(folder)!r} was started with another config (key {key!r} is "
                f"{saved.get(key)!r} there, {config.get(key)!r} now); resume with the "
                "same config (only 'steps' and 'checkpoint_every' may change) or "
                "choose another --out."
            )


def _mask(n: int, indices: list | None, name: str) -> np.ndarray | None:
    if indices is None:
        return None
    if not all(isinstance(i, int) and 0 <= i < n for i in indices):
        raise ValueError(
            f"config model key {name!r} must list unit indices in [0, {n}), got "
            f"{indices}."
        )
    mask = np.zeros(n, dtype=bool)
    mask[indices] = True
    return mask


@functools.cache
def optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    """The optax optimizer a config names, one object per (name, rate): the compiled
    training step keys on the optimizer's identity, so runs of one process share it."""
    return OPTIMIZERS[name](learning_rate)


def build(config: dict):
    """The model, patterns and `nd.train` keyword arguments a config describes."""
    spec = config["model"]
    n = spec["n_units"]
    seed = config.get("seed", 0)
    rng = np.random.default_rng(seed)
    cls = MODEL_CLASSES[spec.get("class", "FirstOrderNetwork")]
    model = cls(
        spec.get("weight_scale", 0.5) * rng.normal(size=(n, n)),
        activation=spec.get("activation", "logistic"),
        input_units=_mask(n, spec.get("input_units"), "input_units"),
        output_units=_mask(n, spec.get("output_units"), "output_units"),
        tau=spec.get("tau", 1.0),
    )
    I = np.asarray(config["patterns"]["I"], dtype=float)
    T = np.asarray(config["patterns"]["T"], dtype=float)
    opt = config["optimizer"]
    kwargs = dict(
        optimizer=optimizer(opt["name"], opt["learning_rate"]),
        steps=config["steps"],
        mode=config.get("mode", "deterministic"),
        method=METHODS[config.get("method", "RecurrentBackprop")](),
        key=jr.key(seed),
        checkpoint_every=config.get("checkpoint_every", 100),
    )
    return model, I, T, kwargs
