"""The argument checks the landscape functions share: the search options and the
source."""

import dataclasses

import equinox as eqx
import jax
from jaxtyping import PyTree

from ..._validation import as_count, as_number, as_patterns, check_finite


@dataclasses.dataclass(frozen=True)
class _Options:
    tol: float | None
    slow_tol: float
    dedup_tol: float
    eig_tol: float | None
    learning_rate: float
    max_steps: int
    polish_steps: int


def _check_options(
    tol, slow_tol, dedup_tol, eig_tol, learning_rate, max_steps, polish_steps
):
    if tol is not None:
        as_number("tol", tol)
    as_number("slow_tol", slow_tol)
    as_number("dedup_tol", dedup_tol)
    if eig_tol is not None:
        as_number("eig_tol", eig_tol)
    as_number("learning_rate", learning_rate)
    as_count("max_steps", max_steps)
    as_count("polish_steps", polish_steps)
    return _Options(
        tol, slow_tol, dedup_tol, eig_tol, learning_rate, max_steps, polish_steps
    )


def _source(model, I) -> PyTree:
    """`I` checked: one source $(N,)$, or a structured source such as the master's
    [`neurodyn.Clamped`][] (its arrays finite)."""
    if isinstance(I, eqx.Module):
        for leaf in jax.tree.leaves(I):
            check_finite("I", leaf)
        return I
    I = as_patterns("I", I, model.n_units)
    if I.ndim != 1:
        raise ValueError(
            f"`I` must be one source of shape ({model.n_units},): a landscape belongs "
            f"to one input; got {I.shape}. Call once per pattern."
        )
    return I
