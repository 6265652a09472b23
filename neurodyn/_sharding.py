r"""Pattern batches split across devices with `jax.sharding`."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Shaped

from ._validation import check_finite


PATTERN_AXIS = "patterns"


def pattern_sharding(devices: Sequence[jax.Device] | None = None) -> NamedSharding:
    """A `NamedSharding` that splits the leading (pattern) axis of an array over a
    1-D mesh of `devices` (default: every device, `jax.devices()`), the mesh axis
    named `"patterns"`."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("`devices` must name at least one device.")
    mesh = Mesh(np.array(devices), (PATTERN_AXIS,))
    return NamedSharding(mesh, PartitionSpec(PATTERN_AXIS))


def _as_sharded_array(a: ArrayLike) -> Array:
    try:
        a = jnp.asarray(a)
    except (TypeError, ValueError):
        raise TypeError(f"`arrays` must be arrays, got {type(a).__name__}.") from None
    if jnp.issubdtype(a.dtype, jnp.inexact):
        check_finite("arrays", a)
    return a


def shard_patterns(
    *arrays: ArrayLike, devices: Sequence[jax.Device] | None = None
) -> Shaped[Array, "p ..."] | tuple[Shaped[Array, "p ..."], ...]:
    r"""Place pattern batches on several devices, split along the pattern axis.

    Each array's leading axis (the $P$ patterns of `I`, `T` or `x0`, shape
    $(P, N)$) is cut into equal blocks, one per device, over a 1-D mesh (see
    `pattern_sharding`). Nothing else changes: [`neurodyn.relax`][],
    [`neurodyn.value_and_grad`][], [`neurodyn.train`][] and the analyses take the
    sharded arrays as they are. Under `jit` every device relaxes its own patterns,
    the per-pattern outputs (`fp.x`, ...) come back sharded the same way, and sums
    over patterns (the loss $E_{\text{total}}$, the gradient) are reduced across
    devices by XLA.

    **Arguments:**

    - `*arrays`: one or more arrays with the same leading size $P$.
    - `devices`: the devices to split over, default `jax.devices()`. $P$ must be a
        multiple of their number.

    **Returns:**

    The array, or a tuple of arrays when several were given, each a `jax.Array`
    with a `NamedSharding` along its first axis.

    **Raises:**

    `ValueError` if no array is given, an array has no pattern axis, the leading
    sizes differ, or $P$ is not a multiple of the number of devices.

    !!! note

        To try this on a CPU, start Python with
        `XLA_FLAGS=--xla_force_host_platform_device_count=8` in the environment
        (it must be set before JAX is imported): the CPU then shows 8 devices.
    """
    if not arrays:
        raise ValueError("`shard_patterns` needs at least one array.")
    arrays = tuple(_as_sharded_array(a) for a in arrays)
    for a in arrays:
        if a.ndim < 1:
            raise ValueError(
                "`arrays`: `shard_patterns` splits the leading pattern axis, but got "
                "a scalar."
            )
        if a.shape[0] == 0:
            raise ValueError(f"`arrays` must hold at least one pattern, got {a.shape}.")
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) != 1:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(
            f"`shard_patterns` needs the same number of patterns in every array, "
            f"got shapes {shapes}."
        )
    sharding = pattern_sharding(devices)
    num_patterns, num_devices = sizes.pop(), sharding.mesh.size
    if num_patterns % num_devices != 0:
        raise ValueError(
            f"`shard_patterns` splits the patterns evenly: {num_patterns} patterns "
            f"do not divide among {num_devices} devices. Use a batch that is a "
            f"multiple of {num_devices}, or pass `devices=` a number of devices "
            f"that divides {num_patterns}."
        )
    placed = tuple(jax.device_put(a, sharding) for a in arrays)
    return placed[0] if len(placed) == 1 else placed
