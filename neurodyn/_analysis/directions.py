r"""How far a gradient method's direction is from the exact gradient, and what it
cost: the angle report that puts every learning rule beside the exact gradient."""

import timeit

import equinox as eqx
import jax
import numpy as np
from jaxtyping import ArrayLike

from .._gradients import (
    AbstractGradientMethod,
    ImplicitDiff,
    _value_and_grad,
    check_method,
)
from .._models.base import AbstractNetwork
from .._relax import as_relaxation, initial_state
from .._solvers.base import Relaxation
from .._validation import (
    as_count,
    as_patterns,
    as_start,
    check_network,
    check_same_batch,
)


class Direction(eqx.Module):
    r"""One method's gradient $g$ against the reference (exact) gradient $g^*$.

    - `cosine`: $\cos\angle = g\cdot g^* / (\|g\|\,\|g^*\|)$.
    - `angle`: the angle in degrees, $\arccos$ of `cosine` (below 90: a descent
      direction of the true loss).
    - `relative_norm`: $\|g\|/\|g^*\|$.
    - `relative_error`: $\|g - g^*\|/\|g^*\|$.
    - `loss`: $E$ as the method computed it.
    - `seconds`: the fastest of the timed calls (compiled, blocked until ready).
    - `memory_bytes`: the scratch memory XLA reserves for the compiled call
      (`temp_size_in_bytes`; 0 when the backend does not say).

    Norms run over every trainable array of the model (its float fields), flattened.
    """

    cosine: float
    angle: float
    relative_norm: float
    relative_error: float
    loss: float
    seconds: float
    memory_bytes: int


def flat_gradient(grads) -> np.ndarray:
    """Every float array of a gradient pytree, flattened into one vector."""
    leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in leaves])


def _memory(args) -> int:
    analysis = _value_and_grad.lower(*args).compile().compiled.memory_analysis()
    return 0 if analysis is None else int(analysis.temp_size_in_bytes)


def compare_directions(
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike,
    *,
    methods: list[AbstractGradientMethod],
    reference: AbstractGradientMethod = ImplicitDiff(),
    repeats: int = 3,
    x0: ArrayLike | None = None,
    relaxation: Relaxation | None = None,
    **deprecated,
) -> list[Direction]:
    r"""Each method's gradient of $E = \tfrac12\sum_a\sum_{i\in O}(T_i^a -
    x_i^{*a})^2$ compared with the `reference` method's, with its time and memory.

    **Arguments:**

    - `model`, `I`, `T`: as for [`neurodyn.value_and_grad`][].
    - `methods`: the gradient methods to compare, e.g.
        `[nd.SemiGradient(), nd.PhantomGradient(5), nd.EquilibriumPropagation(0.01)]`.
    - `reference`: the exact gradient, default [`neurodyn.ImplicitDiff`][].

    **Other arguments:**

    - `repeats`: time each method this many times after a warm-up call and keep
        the fastest.
    - `x0`, `relaxation`: as for [`neurodyn.value_and_grad`][], shared by every
        method (the old keywords `solver=`, `rtol=`, ... still work, deprecated).

    **Returns:** one [`neurodyn.Direction`][] per method, in order.

    **Raises:** the non-convergence (or unstable fixed point) error of
    [`neurodyn.value_and_grad`][] if a relaxation fails.
    """
    check_network(model)
    if not isinstance(methods, (list, tuple)) or not methods:
        raise TypeError(
            "`methods` must be a non-empty list of gradient methods, e.g. "
            f"`[nd.SemiGradient(), nd.PhantomGradient()]`, got {methods!r}."
        )
    for method in methods:
        check_method(method, "methods")
    check_method(reference, "reference")
    as_count("repeats", repeats)
    relaxation = as_relaxation("compare_directions", relaxation, deprecated)
    I = as_patterns("I", I, model.n_units)
    T = as_patterns("T", T, model.n_units).astype(I.dtype)
    check_same_batch(I, T)
    x0 = initial_state(model, I, as_start(x0, I))

    def call(method):
        return jax.block_until_ready(
            _value_and_grad(model, I, T, x0, method, relaxation)
        )

    exact = flat_gradient(call(reference)[1])
    exact_norm = np.linalg.norm(exact)
    directions = []
    for method in methods:
        loss, grads = call(method)  # also the warm-up (compilation)
        g = flat_gradient(grads)
        norm = np.linalg.norm(g)
        cosine = float(g @ exact / max(norm * exact_norm, np.finfo(float).tiny))
        seconds = min(timeit.repeat(lambda m=method: call(m), number=1, repeat=repeats))
        directions.append(
            Direction(
                cosine=cosine,
                angle=float(np.degrees(np.arccos(np.clip(cosine, -1, 1)))),
                relative_norm=float(norm / exact_norm),
                relative_error=float(np.linalg.norm(g - exact) / exact_norm),
                loss=float(loss),
                seconds=seconds,
                memory_bytes=_memory((model, I, T, x0, method, relaxation)),
            )
        )
    return directions
