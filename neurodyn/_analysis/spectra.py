r"""Linear stability of a fixed point: the forward and adjoint linearisations and
their spectra.

Near a fixed point $x^*$ of $\tau\, dx/dt = -x + F(x)$ a small deviation
$\delta x$ obeys $d\,\delta x/dt = L\,\delta x$ with

$$L = \big(-1 + \partial F/\partial x\,(x^*)\big)/\tau,$$

and $x^*$ is (hyperbolically) stable when every eigenvalue of $L$ has a negative real
part. The adjoint dynamics $\tau\, dz/dt = -z + (\partial F/\partial x)^T z + J$ are
linear in $z$ with matrix $L^T$: Almeida's observation that the two share their
spectrum, so the adjoint relaxation converges whenever the forward fixed point is
stable. For a first-order network $\partial F/\partial x = \mathrm{diag}(g'(u))\,W$
(Zhu & Rosenbaum's $(-1 + GW)/\tau$).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float, PyTree

from .._dynamics import adjoint_field
from .._models.base import AbstractNetwork
from .._relax import FixedPoint
from .._validation import as_patterns, check_finite, check_network


def jacobian(
    model: AbstractNetwork, x: Float[Array, " n"], I: PyTree
) -> Float[Array, "n n"]:
    r"""The forward linearisation $L = (-1 + \partial F/\partial x)/\tau$ at `x`, by
    `jax.jacfwd` of the drive (one pattern)."""
    dF = jax.jacfwd(lambda x_: model.drive(x_, I))(x)
    return (dF - jnp.eye(x.shape[0], dtype=dF.dtype)) / model.tau


def adjoint_jacobian(
    model: AbstractNetwork, x: Float[Array, " n"], I: PyTree
) -> Float[Array, "n n"]:
    r"""The linearisation of the adjoint field $(-z + (\partial F/\partial x)^T z +
    J)/\tau$ in $z$, by `jax.jacfwd` through its `jax.vjp` (one pattern). It equals
    $L^T$; computing it from the adjoint field makes the Almeida check independent of
    the forward one."""
    zero = jnp.zeros_like(x)
    return jax.jacfwd(lambda z: adjoint_field(model, x, I, z, zero))(zero)


def _sorted(eigenvalues: Complex[Array, " n"]) -> Complex[Array, " n"]:
    """Eigenvalues by decreasing real part (ties by decreasing imaginary part): the
    leading one first."""
    order = jnp.lexsort((-eigenvalues.imag, -eigenvalues.real))
    return eigenvalues[order]


def _states_and_sources(model, fp, I) -> tuple[Array, Array]:
    check_network(model)
    n = model.n_units
    x = fp.x if isinstance(fp, FixedPoint) else fp
    x = as_patterns("fp", x, n)
    I = as_patterns("I", I, n)
    if I.ndim == 2 and x.ndim == 1:
        raise ValueError(
            f"`I` holds {I.shape[0]} patterns but `fp` one state of shape {x.shape}; "
            "pass the fixed points of every pattern, `nd.relax(model, I)`."
        )
    if x.ndim == 2 and I.ndim == 2 and I.shape[0] != x.shape[0]:
        raise ValueError(f"`fp` has {x.shape[0]} patterns but `I` has {I.shape[0]}.")
    if x.ndim == 2 and I.ndim == 1:
        I = jnp.broadcast_to(I, x.shape)
    return x, I.astype(x.dtype)


@jax.jit
def _eig(matrices: Float[Array, "*p n n"]) -> Complex[Array, "*p n"]:
    eig = jnp.linalg.eigvals
    if matrices.ndim == 3:
        eig = jax.vmap(eig)
    values = eig(matrices)
    return jax.vmap(_sorted)(values) if values.ndim == 2 else _sorted(values)


def _linearisations(fn, model, fp, I):
    x, I = _states_and_sources(model, fp, I)
    return _jit_linearisations(fn, model, x, I)


@eqx.filter_jit
def _jit_linearisations(fn, model, x, I):
    """`fn(model, x, I)` for one pattern, vmapped over a batch."""
    if x.ndim == 1:
        return fn(model, x, I)
    return jax.vmap(lambda x_, i: fn(model, x_, i))(x, I)


def linearisation(
    model: AbstractNetwork, fp: FixedPoint | ArrayLike, I: ArrayLike
) -> Float[Array, "*p n n"]:
    r"""The matrix $L = (-1 + \partial F/\partial x(x^*))/\tau$ of the forward
    dynamics linearised at the fixed point(s) `fp` (a [`neurodyn.FixedPoint`][] or the
    states, $(N,)$ or $(P, N)$), for sources `I`."""
    return _linearisations(jacobian, model, fp, I)


def spectrum(
    model: AbstractNetwork, fp: FixedPoint | ArrayLike, I: ArrayLike
) -> Complex[Array, "*p n"]:
    r"""Eigenvalues of the forward linearisation at the fixed point,

    $$\lambda\Big(\big(-1 + \partial F/\partial x\,(x^*)\big)/\tau\Big),$$

    with $\partial F/\partial x$ by `jax.jacfwd` of `model.drive` (every model).
    $x^*$ is stable when all have $\mathrm{Re}\,\lambda < 0$.

    **Arguments:**

    - `model`: any network.
    - `fp`: the fixed point(s), a [`neurodyn.FixedPoint`][] from
        [`neurodyn.relax`][] or the states themselves, $(N,)$ or $(P, N)$.
    - `I`: the sources the fixed points were relaxed under, $(N,)$ or $(P, N)$.

    **Returns:**

    Complex eigenvalues, $(N,)$ or $(P, N)$, sorted by decreasing real part: the
    leading one first.
    """
    return _eig(linearisation(model, fp, I))


def adjoint_spectrum(
    model: AbstractNetwork, fp: FixedPoint | ArrayLike, I: ArrayLike
) -> Complex[Array, "*p n"]:
    r"""Eigenvalues of the adjoint dynamics linearised at the fixed point,

    $$\lambda\Big(\big(-1 + (\partial F/\partial x)^T\big)/\tau\Big),$$

    from `jax.jacfwd` of the adjoint vector field (one `jax.vjp` of the drive) in $z$.
    Arguments and return as for [`neurodyn.spectrum`][]; by Almeida's argument the two
    coincide.
    """
    return _eig(_linearisations(adjoint_jacobian, model, fp, I))


def _as_spectrum(name: str, eigenvalues: ArrayLike) -> np.ndarray:
    try:
        spectrum = np.atleast_2d(np.asarray(eigenvalues, dtype=complex))
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an array of eigenvalues.") from None
    if spectrum.ndim != 2 or spectrum.size == 0:
        raise ValueError(
            f"`{name}` must be eigenvalues of shape (N,) or (P, N), got "
            f"{np.shape(eigenvalues)}."
        )
    check_finite(name, spectrum)
    return spectrum


def spectral_distance(
    a: Complex[ArrayLike, "*p n"], b: Complex[ArrayLike, "*p n"]
) -> float:
    r"""The largest $|\lambda_i - \mu_{\pi(i)}|$ over the best matching $\pi$ of two
    spectra (an optimal assignment, per pattern), maximised over patterns."""
    from scipy.optimize import linear_sum_assignment

    a, b = _as_spectrum("a", a), _as_spectrum("b", b)
    if a.shape != b.shape:
        raise ValueError(
            f"`a` and `b` must be spectra of the same shape, got {a.shape} and "
            f"{b.shape}."
        )
    worst = 0.0
    for ap, bp in zip(a, b):
        cost = np.abs(ap[:, None] - bp[None, :])
        rows, cols = linear_sum_assignment(cost)
        worst = max(worst, float(np.max(cost[rows, cols])))
    return worst


def almeida_check(
    model: AbstractNetwork, fp: FixedPoint | ArrayLike, I: ArrayLike
) -> float:
    r"""Almeida's result, checked: the largest distance between matched eigenvalues of
    the forward and adjoint linearisations ($L$ and $L^T$) at the fixed point(s);
    zero up to round-off. Arguments as for [`neurodyn.spectrum`][]."""
    return spectral_distance(spectrum(model, fp, I), adjoint_spectrum(model, fp, I))
