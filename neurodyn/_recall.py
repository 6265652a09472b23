r"""Recall in Pineda's content-addressable memory: the slave relaxed from a partial
cue (eq 28), and which stored memory, if any, it reached."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ._models.cam import ContentAddressableMemory
from ._relax import as_relaxation, relax
from ._solvers.base import Relaxation
from ._validation import as_float_array, as_number, as_patterns, check_instance


def cue_state(
    cam: ContentAddressableMemory,
    cue: ArrayLike,
    known: ArrayLike,
    *,
    fill: float = 0.5,
) -> Float[Array, "*b n"]:
    r"""The slave's start state for recall from partial information (eq 28):

    $$x_i(t_0) = T_i\,\delta_{iK} + b_i\,(1 - \delta_{iK}),$$

    with $K$ the known visible units (`known`), $T_i$ their values (`cue`) and
    $b_i = $ `fill` elsewhere.

    **Arguments:**

    - `cam`: the memory.
    - `cue`: $(N,)$ or $(B, N)$ values; only the entries in `known` are used.
    - `known`: boolean mask $(N,)$ or $(B, N)$ of the known units $K$, a subset of
        the visible units.
    - `fill`: the arbitrary value $b$ of the unknown units, default $0.5$.
    """
    _check_memory(cam)
    n = cam.n_units
    cue = as_patterns("cue", cue, n)
    fill = as_number("fill", fill, minimum=None)
    known = jnp.asarray(known)
    if known.dtype != jnp.bool_ or known.ndim not in (1, 2) or known.shape[-1] != n:
        raise ValueError(
            f"`known` must be a boolean mask of shape ({n},) or (B, {n}), got dtype "
            f"{known.dtype} and shape {known.shape}."
        )
    if bool(jnp.any(jnp.where(cam.visible_units, False, known))):
        raise ValueError(
            "`known` marks hidden units; the known units K of a cue must be visible "
            "(eq 28)."
        )
    return jnp.where(known, cue, jnp.asarray(fill, cue.dtype))


class Recall(eqx.Module):
    """The outcome of [`neurodyn.recall`][], with a leading axis for a batch of cues.

    - `x`: the slave's final state.
    - `memory`: the index of the memory reached (every visible unit within `tol` of
      it), or $-1$: a spurious attractor, or no fixed point at all.
    - `distance`: $\\max_{i\\in V} |x_i - T_i|$ to the nearest memory.
    - `converged`: whether the slave settled to a fixed point.
    """

    x: Float[Array, "*b n"]
    memory: Int[Array, "*b"]
    distance: Float[Array, "*b"]
    converged: Bool[Array, "*b"]


def nearest_memory(
    cam: ContentAddressableMemory,
    x: Float[Array, "*b n"],
    memories: Float[Array, "p n"],
    *,
    tol: float = 0.05,
) -> tuple[Int[Array, "*b"], Float[Array, "*b"]]:
    r"""The memory nearest to each state in $\max_{i\in V}|x_i - T_i|$ and that
    distance; the index is $-1$ where the distance is not below `tol`."""
    _check_memory(cam)
    x = as_patterns("x", x, cam.n_units)
    memories = _memories(memories, cam.n_units)
    tol = as_number("tol", tol)
    memories = jnp.broadcast_to(memories, (*x.shape[:-1], *memories.shape))
    gaps = jnp.abs(x[..., None, :] - memories)
    distances = jnp.max(jnp.where(cam.visible_units, gaps, 0), axis=-1)
    index = jnp.argmin(distances, axis=-1)
    distance = jnp.min(distances, axis=-1)
    return jnp.where(distance < tol, index, -1), distance


def recall(
    cam: ContentAddressableMemory,
    cue: ArrayLike,
    known: ArrayLike,
    memories: ArrayLike,
    *,
    I: ArrayLike | None = None,
    fill: float = 0.5,
    tol: float = 0.05,
    relaxation: Relaxation | None = None,
    throw: bool = False,
    **deprecated,
) -> Recall:
    r"""Recall a memory from partial information: start the slave at the cue
    (eq 28, [`neurodyn.cue_state`][]), relax $\tau\dot x = -x + g(Wx) + I$ (eq 1) and
    report the memory whose basin held the cue.

    **Arguments:**

    - `cam`: a [`neurodyn.ContentAddressableMemory`][].
    - `cue`, `known`: the known values and the mask of known visible units,
        $(N,)$ or $(B, N)$ (see [`neurodyn.cue_state`][]).
    - `memories`: the stored memories $T$, $(P, N)$; hidden entries are ignored.

    **Other arguments:**

    - `I`: the bias, $(N,)$; default zero.
    - `fill`: the start value of unknown units, default $0.5$.
    - `tol`: a memory is reached when every visible unit is within `tol` of it.
    - `relaxation`: a [`neurodyn.Relaxation`][] for the slave's relaxation (the old
        keywords `solver=`, `rtol=`, ... still work, deprecated).
    - `throw`: raise if a cue's relaxation did not settle. Default False, as for
        [`neurodyn.relax`][]: the failure is returned in `converged`.

    **Returns:** a [`neurodyn.Recall`][]; a slave that does not settle gives
    `converged=False` and `memory=-1`.
    """

    _check_memory(cam)
    relaxation = as_relaxation("recall", relaxation, deprecated)
    memories = _memories(memories, cam.n_units)
    tol = as_number("tol", tol)
    x0 = cue_state(cam, cue, known, fill=fill)
    if I is None:
        I = jnp.zeros(x0.shape, x0.dtype)
    else:
        I = jnp.broadcast_to(as_float_array("I", I), x0.shape)
    fp = relax(cam, I, x0=x0, relaxation=relaxation, throw=throw)
    memory, distance = nearest_memory(cam, fp.x, memories.astype(fp.x.dtype), tol=tol)
    converged = fp.converged
    return Recall(fp.x, jnp.where(converged, memory, -1), distance, converged)


def memory_start(
    cam: ContentAddressableMemory, memories: ArrayLike, *, fill: float = 0.5
) -> Float[Array, "*p n"]:
    r"""The start state of the master (eq 39) and of the slave when its error is
    measured: $x_i(t_0) = T_i\,\delta_{iV} + b\,\delta_{iH}$ with $b$ = `fill`."""
    _check_memory(cam)
    memories = as_patterns("memories", memories, cam.n_units)
    fill = as_number("fill", fill, minimum=None)
    return jnp.where(cam.visible_units, memories, jnp.asarray(fill, memories.dtype))


def _check_memory(cam) -> None:
    check_instance(
        "cam", cam, ContentAddressableMemory, "a `nd.ContentAddressableMemory`"
    )


def _memories(memories: ArrayLike, n: int) -> Float[Array, "p n"]:
    memories = as_patterns("memories", memories, n)
    if memories.ndim != 2:
        raise ValueError(
            f"`memories` must have shape (P, {n}) for a memory of {n} units, got "
            f"{memories.shape}."
        )
    return memories
