"""Checkpoints of a training run: written atomically, resumed exactly."""

import json
import os
import pathlib

import equinox as eqx
import numpy as np
from jaxtyping import PyTree


_META = "checkpoint.json"


def save_checkpoint(
    folder: pathlib.Path, step: int, state: PyTree, history: dict[str, np.ndarray]
) -> None:
    """Write `state` (any pytree of arrays) and the history after `step` updates.

    The arrays go to files named by the step; `checkpoint.json`, replaced atomically
    last, names the complete one. An interruption at any moment therefore leaves
    either the previous checkpoint or this one, never a mixture.
    """
    folder.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(folder / f"state-{step}.eqx", state)
    with open(folder / f"history-{step}.npz", "wb") as f:
        np.savez(f, **history)
    tmp = folder / (_META + ".tmp")
    tmp.write_text(json.dumps({"step": step}))
    os.replace(tmp, folder / _META)
    for old in [*folder.glob("state-*.eqx"), *folder.glob("history-*.npz")]:
        if old.stem.split("-")[1] != str(step):
            old.unlink()


def load_checkpoint(
    folder: pathlib.Path, like: PyTree
) -> tuple[int, PyTree, dict[str, np.ndarray]] | None:
    """The `(step, state, history)` saved in `folder`, or None if there is none."""
    meta = folder / _META
    if not meta.exists():
        return None
    step = json.loads(meta.read_text())["step"]
    state = eqx.tree_deserialise_leaves(folder / f"state-{step}.eqx", like)
    with np.load(folder / f"history-{step}.npz") as h:
        history = {k: h[k] for k in h.files}
    return step, state, history
