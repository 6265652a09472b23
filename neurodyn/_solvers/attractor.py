r"""Is a fixed point an attractor of the dynamics that led to it?

Anderson acceleration and Newton's method solve $f(y) = 0$ and can land on an
unstable fixed point, one that the dynamics $dy/dt = f(y)$ started from $y_0$ would
leave (a limit cycle around it, or another attractor). The ODE relaxation and the
damped iteration cannot: they converge only where every excited mode decays.

The check runs $k$ steps of Arnoldi's process on the Jacobian
$A = \partial f/\partial y$ at $y^*$ (Jacobian-vector products, no matrix), started
from the displacement $v = y_0 - y^*$, so the Krylov space holds the modes that the
start excites, and reports an unstable fixed point when a Ritz value (eigenvalue of
the $k\times k$ Hessenberg projection) has a positive real part. Extreme eigenvalues
(an unstable pair leaving the bulk of the spectrum) are the first that Arnoldi
finds; a mode that $y_0$ does not excite is not seen, as the ODE from that start
would not see it either (up to rounding).
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._results import RESULTS
from .base import Field, Relaxation


def unstable_fixed_point(
    field: Field,
    y: Float[Array, " n"],
    y0: Float[Array, " n"],
    steps: int,
) -> Bool[Array, ""]:
    """True if a Ritz value of $\\partial f/\\partial y$ at `y`, from `steps` Arnoldi
    steps started at `y0 - y`, has a positive real part (module docstring)."""
    k = min(steps, y.shape[0])
    tiny = jnp.finfo(y.dtype).tiny

    def jvp(v):
        return jax.jvp(field, (y,), (v,))[1]

    v = y0 - y
    norm = jnp.linalg.norm(v)
    basis = [v / jnp.maximum(norm, tiny)]
    hessenberg = jnp.zeros((k, k), y.dtype)
    for j in range(k):
        w = jvp(basis[j])
        for i in range(j + 1):  # modified Gram-Schmidt
            h = jnp.dot(basis[i], w)
            hessenberg = hessenberg.at[i, j].set(h)
            w = w - h * basis[i]
        if j + 1 < k:
            h = jnp.linalg.norm(w)
            hessenberg = hessenberg.at[j + 1, j].set(h)
            # At a breakdown (an invariant subspace) the rest of the basis is zero.
            basis.append(jnp.where(h > tiny, w / jnp.maximum(h, tiny), 0))
    ritz = jnp.linalg.eigvals(hessenberg)
    # Rounding: zero Ritz values (after a breakdown) must not count as growth.
    margin = jnp.sqrt(jnp.finfo(y.dtype).eps) * jnp.max(jnp.abs(ritz))
    # Started at the fixed point itself, nothing is excited: it is where it stays.
    return (norm > 0) & (jnp.max(ritz.real) > margin)


def require_attractor(
    relaxation: Relaxation,
    result: RESULTS,
    field: Field,
    y: Float[Array, " n"],
    y0: Float[Array, " n"],
    steps: int,
) -> RESULTS:
    """`result`, turned to `RESULTS.unstable` where a settled `y` is not an attractor
    (`steps` Arnoldi steps; none, or a `relaxation` that does not ask, skips it)."""
    if steps == 0 or not relaxation.attractors_only:
        return result
    unstable = unstable_fixed_point(field, y, y0, steps)
    return RESULTS.where(
        (result == RESULTS.successful) & unstable, RESULTS.unstable, result
    )
