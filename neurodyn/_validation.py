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
    if not _is_concrete(x):
        return
    # A jax.Array may span several processes' devices: reduce it with jnp, on them,
    # eagerly even when the check runs while a function is being traced.
    xp = jnp if isinstance(x, jax.Array) else np
    with jax.ensure_compile_time_eval():
        finite = xp.isfinite(x if xp is jnp else np.asarray(x))
        all_finite = bool(xp.all(finite))
        bad = 0 if all_finite else int(np.size(x) - int(xp.count_nonzero(finite)))
    if not all_finite:
        raise ValueError(
            f"`{name}` must be finite, but {bad} of its {np.size(x)} entries are NaN "
            "or inf."
        )


def as_float_array(name: str, x: ArrayLike) -> Array:
    """Convert to a floating-point JAX array, refusing booleans, complex numbers and
    anything that is not an array of numbers."""
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be an array of real numbers, got {type(x).__name__} "
            f"{_short(x)}."
        ) from None
    if arr.dtype == jnp.bool_ or jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise ValueError(f"`{name}` must be real-valued, got dtype {arr.dtype}.")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def as_connectivity(mask: ArrayLike | None, n: int) -> Array:
    """A boolean $(N, N)$ connectivity mask; None means every connection."""
    if mask is None:
        return jnp.ones((n, n), dtype=bool)
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_ or mask.shape != (n, n):
        raise ValueError(
            f"`connectivity` must be a boolean mask of shape ({n}, {n}), got "
            f"dtype {mask.dtype} and shape {mask.shape}."
        )
    return mask


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
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise ValueError(
            f"`{name}` must hold at least one pattern, got shape {arr.shape}."
        )
    check_finite(name, arr)
    return arr


def as_start(x0: ArrayLike | None, I: Array) -> Array | None:
    """The start state `x0`: None (the default), one state `(N,)` for every pattern,
    or one per pattern, shaped like `I`."""
    if x0 is None:
        return None
    x0 = as_patterns("x0", x0, I.shape[-1])
    if x0.ndim == 2 and x0.shape != I.shape:
        raise ValueError(
            f"`x0` must have shape ({I.shape[-1]},) or the shape of `I` {I.shape}, got "
            f"{x0.shape}."
        )
    return x0


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def as_number(
    name: str, value, *, minimum: float | None = 0.0, strict: bool = True
) -> float | jax.Array:
    """A finite real number above `minimum` (or at least it, if not `strict`; any
    finite number if `minimum` is None). A traced scalar (e.g. a learning rate
    vmapped over) is returned as it is: its value is checked where it is concrete."""
    if isinstance(value, (bool, str)) or not isinstance(
        value, (int, float, np.number, np.ndarray, jax.Array)
    ):
        raise TypeError(
            f"`{name}` must be a number, got {type(value).__name__} {_short(value)}."
        )
    if np.ndim(value) != 0 or not np.isrealobj(value):
        raise TypeError(f"`{name}` must be a real scalar, got {_short(value)}.")
    if not _is_concrete(value):
        return value
    number = float(value)
    if minimum is None:
        if not np.isfinite(number):
            raise ValueError(f"`{name}` must be a finite number, got {number}.")
        return number
    if not np.isfinite(number) or number < minimum or (strict and number == minimum):
        expected = (
            ("a positive" if strict else "a non-negative") + " finite number"
            if minimum == 0
            else f"a finite number {'>' if strict else '>='} {minimum}"
        )
        raise ValueError(f"`{name}` must be {expected}, got {number}.")
    return number


def as_count(name: str, value, *, minimum: int = 1) -> int:
    """A Python integer >= `minimum` (steps, iterations, sizes)."""
    expected = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}"
    )
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"`{name}` must be {expected}, got {type(value).__name__} {_short(value)}."
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be {expected}, got {value}.")
    return int(value)


def check_instance(name: str, value, kind: type | tuple[type, ...], what: str) -> None:
    """Raise a `TypeError` naming `name` unless `value` is a `kind` (`what` says which
    objects are meant, e.g. "a neurodyn network such as `nd.FirstOrderNetwork`")."""
    if not isinstance(value, kind):
        raise TypeError(
            f"`{name}` must be {what}, got {type(value).__name__} {_short(value)}."
        )


def check_network(model, name: str = "model") -> None:
    from ._models.base import AbstractNetwork

    check_instance(
        name,
        model,
        AbstractNetwork,
        "a neurodyn network such as `nd.FirstOrderNetwork`",
    )


def check_relaxation_options(rtol, atol, t_max, max_steps) -> None:
    """The tolerances, time limit and step limit of every relaxation."""
    as_number("rtol", rtol)
    as_number("atol", atol)
    if t_max is not None:
        as_number("t_max", t_max)
    as_count("max_steps", max_steps)


def check_same_batch(I: Array, T: Array, names: tuple[str, str] = ("I", "T")) -> None:
    a, b = names
    if I.ndim != T.ndim or I.shape != T.shape:
        raise ValueError(
            f"`{a}` and `{b}` must have the same shape ((N,) or (P, N) with the same "
            f"number of patterns P), got {a} {I.shape} and {b} {T.shape}."
        )


def as_activation(name: str, value: Activation | str) -> Activation:
    """An activation from itself or the name of a built-in one."""
    if isinstance(value, str):
        try:
            return activation_by_name(value)
        except ValueError as e:
            raise ValueError(f"`{name}`: {e}") from None
    if not isinstance(value, Activation):
        raise ValueError(
            f"`{name}` must be a `neurodyn.Activation` or the name of a built-in one "
            f"(e.g. 'logistic'), got {value!r}."
        )
    return value


def as_time_constant(tau: float) -> float:
    """`tau` as a float, refusing non-positive and infinite values."""
    return as_number("tau", tau)


def as_square_weights(weights: ArrayLike) -> Array:
    """A finite float (N, N) weight matrix."""
    weights = as_float_array("weights", weights)
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(
            f"`weights` must be a square (N, N) matrix, got shape {weights.shape}."
        )
    check_finite("weights", weights)
    return weights
