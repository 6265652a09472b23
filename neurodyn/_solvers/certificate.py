r"""The stability certificate: does the dynamics hold the state a solver settled on?

A steady state $y^*$ of $dy/dt = f(y)$ is held by the dynamics (an attractor) when
every eigenvalue of the linearisation $A = \partial f/\partial y$ at $y^*$ has a
negative real part; for the forward dynamics $A = (-1 + \partial F/\partial x)/\tau$.
Every strategy can settle on an unstable fixed point: Anderson acceleration and
Newton's method solve $f(y) = 0$ whatever its stability, and the plain iteration and
the ODE itself do so from a start on an invariant set (a symmetric network started
symmetrically stays symmetric, and settles wherever the fixed point is stable within
that set; e.g. the inhibitory ring from $x = 0.5$ on every unit).

The certificate estimates the rightmost eigenvalue of $A$ by $k$ steps of Arnoldi's
process: Jacobian-vector products through one `jax.linearize` of $f$ at $y^*$ (no
matrix), from a fixed random probe, so that no invariant subspace hides an unstable
mode (a probe along $y_0 - y^*$ lies in the set that fooled the solver). The Ritz
values $\theta$, eigenvalues of the $k \times k$ Hessenberg projection
$H = V^T A V$, approach the extreme eigenvalues first. The state is unstable when

$$\max \mathrm{Re}\,\theta > \max\big(1/t_{\max},\ \sqrt{\epsilon}\,\max|\theta|\big),$$

a growth that would multiply a perturbation by $e$ within the relaxation's horizon
$t_{\max}$ and stands above rounding. For a normal $A$ the Ritz values lie in the
convex hull of its eigenvalues, so a stable fixed point is never called unstable;
an unstable eigenvalue far inside a large spectrum can take more than $k$ steps to
show. Cost: $k$ Jacobian-vector products and one evaluation of $f$ per pattern.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Complex, Float

from .._results import RESULTS
from .base import Field, Relaxation


# Arnoldi steps: exact for networks of up to this many units; 5 find each of the
# 8 saddles met in the CAM demo (15 units), 4 miss one (docs/solvers.md).
ARNOLDI_STEPS = 5
# The probe's seed: fixed, so that a relaxation is reproducible.
_PROBE_SEED = 0


def ritz_values(
    field: Field, y: Float[Array, " n"], steps: int = ARNOLDI_STEPS
) -> Complex[Array, " k"]:
    r"""Eigenvalues of the Hessenberg projection of $\partial f/\partial y$ at `y`
    after `steps` Arnoldi steps from the random probe (module docstring)."""
    k = min(steps, y.shape[0])
    tiny = jnp.finfo(y.dtype).tiny
    _, jvp = jax.linearize(field, y)
    # Drawn when traced, so that it is a constant of the program, not a random
    # number generator compiled into every solver that certifies (that was three
    # quarters of the certificate's instructions).
    with jax.ensure_compile_time_eval():
        probe = jr.normal(jr.key(_PROBE_SEED), y.shape, y.dtype)
    basis = [probe / jnp.linalg.norm(probe)]
    zero = jnp.zeros((), y.dtype)
    entries = [[zero] * k for _ in range(k)]  # H, filled column by column
    for j in range(k):
        w = jvp(basis[j])
        for i in range(j + 1):  # modified Gram-Schmidt
            entries[i][j] = h = jnp.dot(basis[i], w)
            w = w - h * basis[i]
        if j + 1 < k:
            entries[j + 1][j] = h = jnp.linalg.norm(w)
            # At a breakdown (an invariant subspace, whose Ritz values are exact)
            # the rest of the basis is zero and adds zero Ritz values.
            basis.append(jnp.where(h > tiny, w / jnp.maximum(h, tiny), 0))
    # One stack at the end: entry-wise updates of H would be scatters, slower to
    # compile under vmap.
    hessenberg = jnp.stack([jnp.stack(row) for row in entries])
    return jnp.linalg.eigvals(hessenberg)


def unstable(field: Field, y: Float[Array, " n"], horizon: float) -> Bool[Array, ""]:
    r"""True if the certificate finds an eigenvalue of $\partial f/\partial y$ at
    `y` with real part above $\max(1/$`horizon`$, \sqrt\epsilon\max|\theta|)$."""
    theta = ritz_values(field, jax.lax.stop_gradient(y))
    rounding = jnp.sqrt(jnp.finfo(y.dtype).eps) * jnp.max(jnp.abs(theta))
    return jnp.max(theta.real) > jnp.maximum(1.0 / horizon, rounding)


def certify(
    relaxation: Relaxation,
    result: RESULTS,
    field: Field,
    y: Float[Array, " n"],
    tau: float,
) -> RESULTS:
    """`result`, turned to `RESULTS.unstable` where `y` settled but the dynamics do
    not hold it; unchanged when the `relaxation` does not ask
    (`attractors_only=False`). Every steady-state strategy ends with this."""
    if not relaxation.attractors_only:
        return result
    flagged = unstable(field, y, relaxation.horizon(tau))
    return RESULTS.where(
        (result == RESULTS.successful) & flagged, RESULTS.unstable, result
    )
