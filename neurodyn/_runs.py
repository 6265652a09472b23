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
import zipfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

import equinox as eqx
import numpy as np

from ._activations import Activation


def model_arrays(model) -> dict[str, np.ndarray]:
    """Every array field of `model` as a NumPy array, keyed by field name."""
    arrays = {}
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if eqx.is_array(value):
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


def relaxation_config(relaxation) -> dict:
    """The settings of a `Relaxation`, for a run's config.json: the solver as
    written, its tolerances and budget (None where the default depends on tau)."""
    return {
        "solver": repr(relaxation.solver),
        "rtol": relaxation.rtol,
        "atol": relaxation.atol,
        "t_max": relaxation.t_max,
        "max_steps": relaxation.max_steps,
        "attractors_only": relaxation.attractors_only,
    }


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if eqx.is_array(value):
        array = np.asarray(value)
        return array.item() if array.ndim == 0 else array.tolist()
    return value


def write_atomically(path: pathlib.Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file under a temporary name in its folder, `fsync` it, rename it
    over `path` and `fsync` the folder, so `path` is either old or complete."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_json(path: pathlib.Path, content: dict) -> None:
    text = json.dumps(jsonable(content), indent=2) + "\n"
    write_atomically(path, lambda f: f.write(text.encode()))


def write_npz(path: pathlib.Path, arrays: dict) -> None:
    write_atomically(
        path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    )


def read_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file, or a one-line `ValueError` if it is missing or
    damaged (truncated, overwritten, not an archive)."""
    try:
        with np.load(path, allow_pickle=False) as content:
            return {k: content[k] for k in content.files}
    except FileNotFoundError:
        raise ValueError(f"{str(path)!r} is missing.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{str(path)!r} is damaged ({type(e).__name__}).") from None


def check_run_folder(folder: pathlib.Path) -> pathlib.Path:
    """`folder` if it holds a finished, readable run: `metrics.json` (written last),
    `params.npz` and `history.npz`; a one-line `ValueError` otherwise."""
    if not folder.is_dir():
        raise ValueError(f"Run folder {str(folder)!r} does not exist.")
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except FileNotFoundError:
        raise ValueError(
            f"{str(folder)!r} is not a finished run folder (no metrics.json); if its "
            "run was interrupted, continue it with `neurodyn train --resume`."
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{str(folder / 'metrics.json')!r} is damaged.") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{str(folder / 'metrics.json')!r} is not a JSON object.")
    for name in ("params.npz", "history.npz"):
        read_npz(folder / name)
    return folder


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
    try:
        stage = pathlib.Path(
            tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.resolve().parent)
        )
    except OSError as e:
        raise ValueError(f"Cannot create output folder {str(out)!r}: {e}.") from None
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    stage.rename(out)
