"""Run folders: the files a demo or training run leaves behind.

A run folder holds `config.json` (what was run), `metrics.json` (the headline
numbers), `params.npz` (every array field of the model, by field name), `data.npz`
(the patterns) and figures. It is enough to recompute the headline numbers with
plain NumPy. Folders are written under a temporary name and renamed at the end, so a
crash never leaves a half-written folder that looks like a result.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np

from ._activations import Activation


def model_arrays(model) -> dict[str, np.ndarray]:
    """Every array field of `model` as a NumPy array, keyed by field name."""
    arrays = {}
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            arrays[field.name] = np.asarray(value)
    return arrays


def model_config(model) -> dict:
    """The non-array fields of `model` (class, activation names, time constant)."""
    config = {"class": type(model).__name__}
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if isinstance(value, Activation):
            config[field.name] = value.name
        elif isinstance(value, (int, float, str, bool)):
            config[field.name] = value
    return config


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        array = np.asarray(value)
        return array.item() if array.ndim == 0 else array.tolist()
    return value


def write_json(path: pathlib.Path, content: dict) -> None:
    path.write_text(json.dumps(jsonable(content), indent=2) + "\n")


def check_writable(out: pathlib.Path) -> pathlib.Path:
    """Fail early, with one line, if `out` cannot become a run folder."""
    out = pathlib.Path(out)
    parent = out.resolve().parent
    if out.exists() and not out.is_dir():
        raise ValueError(f"Output folder {str(out)!r} exists and is not a folder.")
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as e:
            raise ValueError(f"Cannot create output folder {str(out)!r}: {e}.") from e
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"Output folder {str(out)!r} is not writable.")
    return out


@contextlib.contextmanager
def staged_folder(out: pathlib.Path) -> Iterator[pathlib.Path]:
    """Yield a fresh staging folder next to `out`; on success it replaces `out`."""
    out = check_writable(out)
    stage = pathlib.Path(
        tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.resolve().parent)
    )
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    stage.rename(out)
