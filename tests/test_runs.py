"""Run folders' files: a model's arrays by field name, metrics as plain JSON."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import neurodyn as nd
from neurodyn._runs import jsonable, model_arrays, relaxation_config


class _Holder(eqx.Module):
    weights: jax.Array
    scale: np.float64
    layout: jax.ShapeDtypeStruct


def test_model_arrays_keeps_arrays_and_only_arrays():
    """JAX and NumPy arrays and NumPy scalars are saved; a field that only describes
    an array (it has a `shape` and a `dtype`) is not one."""
    holder = _Holder(
        jnp.ones(2), np.float64(2.0), jax.ShapeDtypeStruct((2,), jnp.float64)
    )
    arrays = model_arrays(holder)
    assert sorted(arrays) == ["scale", "weights"]
    assert all(isinstance(a, np.ndarray) for a in arrays.values())


def test_jsonable_turns_arrays_into_numbers_and_lists():
    content = {"a": np.float32(1.5), "b": jnp.arange(3), "c": [np.int64(2)], 4: "x"}
    assert jsonable(content) == {"a": 1.5, "b": [0, 1, 2], "c": [2], "4": "x"}


def test_relaxation_config_records_every_setting():
    """A run folder says how its steady states were found: the solver as written,
    the tolerances and the budget, as plain JSON."""
    relaxation = nd.Relaxation(
        nd.Anderson(memory=3), rtol=1e-5, atol=1e-7, t_max=50.0, max_steps=99
    )
    config = json.loads(json.dumps(relaxation_config(relaxation)))
    assert config == {
        "solver": "Anderson(memory=3)",
        "rtol": 1e-5,
        "atol": 1e-7,
        "t_max": 50.0,
        "max_steps": 99,
        "attractors_only": True,
    }
