"""The batch axis at the boundary: the core is written for one pattern, and a batch
is one `jax.vmap` over it."""

from collections.abc import Callable

import jax
from jaxtyping import Array


def batched(fn: Callable, x: Array, *args):
    """`fn(x, *args)` for one pattern (`x` of shape `(N,)`), or vmapped over the
    leading pattern axis of `x` and of every argument for a batch `(P, N)`."""
    return fn(x, *args) if x.ndim == 1 else jax.vmap(fn)(x, *args)
