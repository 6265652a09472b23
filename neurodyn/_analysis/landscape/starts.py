"""The start states of the search: checked, or drawn near visited states."""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ..._validation import (
    as_count,
    as_float_array,
    as_number,
    as_patterns,
    check_finite,
)


def _starts(model, starts) -> Float[Array, "s n"]:
    starts = as_patterns("starts", starts, model.n_units, of="units")
    return jnp.atleast_2d(starts)


def starts_near(
    states: ArrayLike, count: int, *, noise: float = 0.0, seed: int = 0
) -> Float[Array, "count n"]:
    r"""`count` start states for [`neurodyn.find_fixed_points`][]: visited states
    (rows of `states`, e.g. a trajectory $(K, N)$ or a batch of them $(P, K, N)$)
    drawn uniformly with replacement, plus Gaussian noise of standard deviation
    `noise` (Sussillo & Barak's starts from the data)."""
    states = as_float_array("states", states)
    if states.ndim < 2 or states.shape[-1] == 0 or states.size == 0:
        raise ValueError(
            f"`states` must be visited states of shape (K, N) or (..., K, N), got "
            f"{states.shape}."
        )
    check_finite("states", states)
    count = as_count("count", count)
    noise = as_number("noise", noise, strict=False)
    seed = as_count("seed", seed, minimum=0)
    flat = np.asarray(states).reshape(-1, states.shape[-1])
    rng = np.random.default_rng(seed)
    picked = flat[rng.integers(0, flat.shape[0], size=count)]
    return jnp.asarray(picked + noise * rng.normal(size=picked.shape), states.dtype)
