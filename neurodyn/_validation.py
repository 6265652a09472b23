"""Argument checks that raise at call (trace) time, naming the argument at fault."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._activations import Activation, activation_by_name


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_finite(name: str, x: ArrayLike) -> None:
    """Raise if a concrete array holds NaN or inf (tracers are left to run time)."""
    if _is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
        raise ValueError(
            f"`{name}` must be finite, but {bad} of its {np.size(x)} entries are NaN "
            "or inf."
        )


def as_float_array(name: str, x: ArrayLike) -> Array:
    """Convert to a floating-point JAX array, refusing booleans and complex numbers."""
    arr = jnp.asarray(x)
    if arr.dtype == jnp.bool_ or jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise ValueError(f"`{name}` must be real-valued, got dtype {arr.dtype}.")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def as_unit_mask(name: str, mask: ArrayLike | None, n: int) -> Array:
    """A boolean mask of shape `(n,)`; `None` means every unit."""
    if mask is None:
        return jnp.ones(n, dtype=bool)
    arr = jnp.asarray(mask)
    if arr.dtype != jnp.bool_:
        raise ValueError(
            f"`{name}` must be a boolean mask of shape ({n},), got dtype {arr.dtype}. "
            "Use e.g. `np.arange(N) < 2` rather than a list of indices."
        )
    if arr.shape != (n,):
        raise ValueError(
            f"`{name}` must have shape ({n},) (one entry per unit), got {arr.shape}."
        )
    return arr


def as_patterns(name: str, x: ArrayLike, n: int, of: str = "units") -> Array:
    """A float array of shape `(n,)` (one pattern) or `(P, n)` (a batch), for a
    network of `n` units (or, say, inputs)."""
    arr = as_float_array(name, x)
    if arr.ndim not in (1, 2) or arr.shape[-1] != n:
        raise ValueError(
            f"`{name}` must have shape ({n},) or (P, {n}) for a network of {n} {of}, "
            f"got {arr.shape}."
        )
    check_finite(name, arr)
    return arr


def check_same_batch(I: Array, T: Array) -> None:
    if I.ndim != T.ndim or I.shape != T.shape:
        raise ValueError(
            "`I` and `T` must have the same shape ((N,) or (P, N) with the same number "
            f"of patterns P), got I {I.shape} and T {T.shape}."
        )


def as_activation(name: str, value: Activation | str) -> Activation:
    """An activation from itself or the name of a built-in one."""
    if isinstance(value, str):
        return activation_by_name(value)
    if not isinstance(value, Activation):
        raise ValueError(
            f"`{name}` must be a `neurodyn.Activation` or the name of a built-in one "
            f"(e.g. 'logistic'), got {value!r}."
        )
    return value


def as_time_constant(tau: float) -> float:
    """`tau` as a float, refusing non-positive and infinite values."""
    tau = float(tau)
    if not tau > 0 or tau == float("inf"):
        raise ValueError(f"`tau` must be a positive finite time constant, got {tau}.")
    return tau


def as_square_weights(weights: ArrayLike) -> Array:
    """A finite float (N, N) weight matrix."""
    weights = as_float_array("weights", weights)
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(
            f"`weights` must be a square (N, N) matrix, got shape {weights.shape}."
        )
    check_finite("weights", weights)
    return weights
