"""Checkpoints of a training run: durable, atomic, checked, resumed exactly.

A checkpoint after `step` updates is three files named by the step:
`state-{step}.eqx` (the pytree of arrays), `history-{step}.npz` and `run-{step}.json`
(what identifies the run, the state's layout and the SHA-256 of the two array files).
`checkpoint.json`, replaced last, names the complete one. Every file is written to a
temporary name, flushed to disk (`fsync`) and renamed atomically, and the folder is
synced after each rename, so a crash or SIGKILL at any moment leaves either the
previous checkpoint or this one. A checkpoint that is damaged, or that belongs to
another run (other patterns, arguments or model shape), is refused, never mixed in.

In a run over several processes (patterns sharded over every process's devices)
every process gathers the arrays (`to_host`), only process 0 writes, and every
process reads the same files on resume.
"""

import hashlib
import io
import json
import pathlib
import re

import equinox as eqx
import jax
import numpy as np
from jax.experimental import multihost_utils
from jaxtyping import PyTree

from .._runs import write_atomically


_POINTER = "checkpoint.json"
# The files `save_checkpoint` writes (and their temporary names); no others are removed.
_OWN_FILE = re.compile(
    r"(?P<tmp>\.)?(state|history|run)-(?P<step>\d+)\.(eqx|npz|json)(?(tmp)\.tmp|)"
)


# Fields renamed since a checkpoint may have been written, as (old path, new path)
# patterns, so that a checkpoint from before a rename still resumes: an
# `ImplicitLayer`'s bias was `T` (remove with the deprecated name).
_RENAMED_FIELDS = ((re.compile(r"(\.layers\[\d+\])\.T$"), r"\1.bias"),)


def _renamed(path: str) -> str:
    """A saved layout's `path` under today's field names."""
    for old, new in _RENAMED_FIELDS:
        path = old.sub(new, path)
    return path


def layout(tree: PyTree) -> list[list[str]]:
    """Every array leaf of `tree` as `[path, shape, dtype]`."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [
        [
            jax.tree_util.keystr(path),
            str(np.shape(leaf)),
            str(getattr(leaf, "dtype", type(leaf).__name__)),
        ]
        for path, leaf in leaves
    ]


def spans_processes(x) -> bool:
    """Whether `x` is a `jax.Array` with shards on other processes' devices."""
    return isinstance(x, jax.Array) and not x.is_fully_addressable


def to_host(tree: PyTree) -> PyTree:
    """`tree` with every array spread over several processes gathered whole into a
    NumPy array on this process (a collective: every process must call it); other
    leaves as they are."""
    return jax.tree.map(
        lambda leaf: (
            multihost_utils.process_allgather(leaf, tiled=True)
            if spans_processes(leaf)
            else leaf
        ),
        tree,
    )


def fingerprint(**identity) -> str:
    """A SHA-256 of the arrays and strings in `identity`: what must match for a run
    to be resumed."""
    digest = hashlib.sha256()
    for name in sorted(identity):
        digest.update(name.encode())
        for leaf in jax.tree.leaves(to_host(identity[name])):
            if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            array = np.asarray(leaf)
            digest.update(f"{array.dtype}{array.shape}".encode() + array.tobytes())
    return digest.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(
    folder: pathlib.Path,
    step: int,
    state: PyTree,
    history: dict[str, np.ndarray],
    run_id: str,
) -> None:
    """Write `state` (any pytree of arrays) and the history after `step` updates of
    the run identified by `run_id` (a [`fingerprint`][]); arrays spread over
    processes must first be gathered by `to_host`."""
    folder.mkdir(parents=True, exist_ok=True)
    state_bytes, history_bytes = io.BytesIO(), io.BytesIO()
    eqx.tree_serialise_leaves(state_bytes, state)
    np.savez(history_bytes, **history)
    files = {
        f"state-{step}.eqx": state_bytes.getvalue(),
        f"history-{step}.npz": history_bytes.getvalue(),
    }
    for name, data in files.items():
        write_atomically(folder / name, lambda f, data=data: f.write(data))
    manifest = {
        "step": step,
        "run": run_id,
        "layout": layout(state),
        "sha256": {name: _sha256(data) for name, data in files.items()},
    }
    write_atomically(
        folder / f"run-{step}.json", lambda f: f.write(json.dumps(manifest).encode())
    )
    write_atomically(
        folder / _POINTER, lambda f: f.write(json.dumps({"step": step}).encode())
    )
    for old in folder.iterdir():
        match = _OWN_FILE.fullmatch(old.name)
        if match and (match["tmp"] or match["step"] != str(step)):
            old.unlink()


def _refuse(folder: pathlib.Path, what: str) -> ValueError:
    return ValueError(
        f"Checkpoint in {str(folder)!r} {what}; delete that folder to start afresh, or "
        "point `checkpoint_dir` / `--out` elsewhere."
    )


def _read_json(folder: pathlib.Path, name: str) -> dict:
    try:
        content = json.loads((folder / name).read_text())
    except FileNotFoundError:
        raise _refuse(folder, f"is incomplete: {name} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(folder, f"is corrupt: {name} is not valid JSON") from None
    if not isinstance(content, dict) or not isinstance(content.get("step"), int):
        raise _refuse(folder, f"is corrupt: {name} does not name a step")
    return content


def _read_checked(folder: pathlib.Path, name: str, sha256: str) -> bytes:
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        raise _refuse(folder, f"is incomplete: {name} is missing") from None
    if _sha256(data) != sha256:
        raise _refuse(folder, f"is corrupt: {name} does not match its checksum")
    return data


def load_checkpoint(
    folder: pathlib.Path, like: PyTree, run_id: str
) -> tuple[int, PyTree, dict[str, np.ndarray]] | None:
    """The `(step, state, history)` saved in `folder`, or None if there is none.

    Raises a one-line `ValueError` if the checkpoint is damaged, holds a state laid
    out differently from `like`, or was written by another run than `run_id`.
    """
    if not (folder / _POINTER).exists():
        return None
    step = _read_json(folder, _POINTER)["step"]
    manifest = _read_json(folder, f"run-{step}.json")
    if manifest["step"] != step or not isinstance(manifest.get("sha256"), dict):
        raise _refuse(folder, f"is corrupt: run-{step}.json does not describe it")
    expected = layout(like)
    saved_layout = [
        [_renamed(path), *rest] for path, *rest in manifest.get("layout", [])
    ]
    if saved_layout != expected:
        saved = {path: rest for path, *rest in saved_layout}
        for path, *rest in expected:
            if saved.get(path) != rest:
                got = "absent" if path not in saved else " ".join(saved[path])
                raise _refuse(
                    folder,
                    f"belongs to another model or optimizer: `{path}` is {got} there "
                    f"but {' '.join(rest)} here",
                )
        raise _refuse(folder, "belongs to another model or optimizer (extra arrays)")
    if manifest.get("run") != run_id:
        raise _refuse(
            folder,
            "belongs to another run: the patterns, start state, mode, method, rule, "
            "regularizer (or their settings) or key differ",
        )
    files = manifest["sha256"]
    state_name, history_name = f"state-{step}.eqx", f"history-{step}.npz"
    state_bytes = _read_checked(folder, state_name, files.get(state_name, ""))
    history_bytes = _read_checked(folder, history_name, files.get(history_name, ""))
    state = eqx.tree_deserialise_leaves(io.BytesIO(state_bytes), like)
    with np.load(io.BytesIO(history_bytes)) as h:
        history = {k: h[k] for k in h.files}
    return step, state, history
