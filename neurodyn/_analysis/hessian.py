r"""Curvature of the error at the fixed point: $\partial^2 E/\partial\theta^2$,
exactly, through the implicit system $x^* = F(x^*; \theta, I)$.

The fixed point is differentiable in forward mode by the implicit function theorem
(`neurodyn._implicit`, the rule under every adjoint gradient method): a tangent
$\dot\theta$ of any parameters moves it by

$$\dot x^* = (1 - \partial F/\partial x)^{-1}\,(\partial F/\partial\theta)\,
  \dot\theta,$$

one linear solve (lineax, LU by default). The rule re-enters itself, so JAX
differentiates the gradient $\nabla_\theta E$ again and $E(\theta) =
\tfrac12\sum_a\sum_{i\in O}(T_i^a - x_i^{*a}(\theta))^2$ gets its exact Hessian
(forward over reverse); nothing is finite-differenced and the relaxation is never
unrolled. A Hessian-vector product costs a few linear solves per pattern and never
forms the Hessian.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._gradients import ImplicitDiff, pattern_errors
from .._models.base import AbstractNetwork
from .._relax import (
    as_relaxation,
    check_converged,
    initial_state,
)
from .._solvers.base import Relaxation
from .._validation import (
    as_float_array,
    as_patterns,
    as_start,
    check_finite,
    check_network,
    check_same_batch,
)


def _weights(model: AbstractNetwork) -> PyTree:
    return model.weights


def _selected(model: AbstractNetwork, wrt: Callable) -> tuple[PyTree, PyTree]:
    """The float arrays `wrt(model)` selects (the parameters $\theta$), and the rest
    of the selection."""
    if not callable(wrt):
        raise ValueError(
            "`wrt` must pick parameters from the model, e.g. `lambda m: m.weights` "
            f"or `lambda m: m` (every float array), got {wrt!r}."
        )
    try:
        selection = wrt(model)
    except AttributeError as e:
        raise ValueError(
            f"`wrt` could not pick parameters from a {type(model).__name__} ({e}); "
            "pass e.g. `wrt=lambda m: m` for every float array of the model."
        ) from e
    return eqx.partition(selection, eqx.is_inexact_array)


def _gradient(params, rest, wrt, model, I, T, x0, relaxation):
    r"""$\nabla_\theta E$ (summed over patterns), and the fixed points (for the
    convergence check)."""

    def total(p):
        m = eqx.tree_at(wrt, model, eqx.combine(p, rest))
        errors, fp = pattern_errors(m, I, T, x0, ImplicitDiff(), relaxation)
        return jnp.sum(errors), fp

    return jax.grad(total, has_aux=True)(params)


@eqx.filter_jit
def _hessian(model, I, T, x0, relaxation, wrt):
    params, rest = _selected(model, wrt)
    H, fp = jax.jacfwd(
        lambda p: _gradient(p, rest, wrt, model, I, T, x0, relaxation), has_aux=True
    )(params)
    return check_converged(fp, H)


@eqx.filter_jit
def _hvp(model, I, T, x0, relaxation, wrt, v):
    params, rest = _selected(model, wrt)
    _, Hv, fp = jax.jvp(
        lambda p: _gradient(p, rest, wrt, model, I, T, x0, relaxation),
        (params,),
        (v,),
        has_aux=True,
    )
    return check_converged(fp, Hv)


def _prepare(function, model, I, T, x0, relaxation, deprecated, wrt):
    check_network(model)
    _selected(model, wrt)
    relaxation = as_relaxation(function, relaxation, deprecated)
    I = as_patterns("I", I, model.n_units)
    T = as_patterns("T", T, model.n_units).astype(I.dtype)
    check_same_batch(I, T)
    x0 = as_start(x0, I)
    I, T = jnp.atleast_2d(I), jnp.atleast_2d(T)
    return I, T, initial_state(model, I, x0), relaxation


def hessian(
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike,
    *,
    wrt: Callable[[AbstractNetwork], PyTree] = _weights,
    x0: ArrayLike | None = None,
    relaxation: Relaxation | None = None,
    **deprecated,
) -> PyTree:
    r"""The Hessian of the error at the fixed point with respect to the weights (or
    any parameters $\theta$),

    $$H_{ij,kl} = \frac{\partial^2 E}{\partial \theta_{ij}\,\partial \theta_{kl}},
      \qquad E = \tfrac12 \sum_a \sum_{i\in O}\big(T^a_i - x^{*}_i(\theta,
      I^a)\big)^2,$$

    exact through the implicit system (implicit-function-theorem tangents of $x^*$,
    differentiated forward over reverse). Connections outside `connectivity` have zero
    rows and columns.

    **Arguments:**

    - `model`: any network; each pattern relaxes under its `training_source`, as in
        [`neurodyn.value_and_grad`][].
    - `I`, `T`: sources and targets, $(N,)$ or $(P, N)$.

    **Other arguments:**

    - `wrt`: picks the parameters from the model, as the `where` of `eqx.tree_at`:
        default `lambda m: m.weights`; `lambda m: m` differentiates with respect
        to every float array of the model (masks and other leaves are left out).
    - `x0`, `relaxation` as for [`neurodyn.relax`][] (they pick and resolve the
        fixed point; the old keywords `solver=`, `rtol=`, ... still work,
        deprecated).

    **Returns:** for the weights, an array of shape `weights.shape * 2`; reshape it
    to $(W.size, W.size)$ for a matrix. For a pytree of parameters, a pytree of
    pytrees, `H[a][b]` of shape `a.shape + b.shape`, as `jax.hessian` returns it
    (`None` where `wrt` picked no float array).

    **Raises:** the non-convergence error of [`neurodyn.value_and_grad`][] if a
    relaxation fails.
    """
    I, T, x0, relaxation = _prepare(
        "hessian", model, I, T, x0, relaxation, deprecated, wrt
    )
    return _hessian(model, I, T, x0, relaxation, wrt)


def hessian_vector_product(
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike,
    v: PyTree,
    *,
    wrt: Callable[[AbstractNetwork], PyTree] = _weights,
    x0: ArrayLike | None = None,
    relaxation: Relaxation | None = None,
    **deprecated,
) -> PyTree:
    r"""$H v = \frac{d}{d\epsilon}\nabla_\theta E(\theta + \epsilon v)
    \big|_{\epsilon=0}$ without forming $H$: one forward-over-reverse pass (a few
    linear solves per pattern, $O(N^2)$ memory). `v` has the structure and shapes of
    the parameters `wrt` picks (by default the shape of `weights`), and so has the
    result. Other arguments as for [`neurodyn.hessian`][]."""
    check_network(model)
    params, _ = _selected(model, wrt)
    leaves, structure = jax.tree.flatten(params)
    try:
        given = [as_float_array("v", u) for u in structure.flatten_up_to(v)]
    except (ValueError, TypeError) as e:
        if "`v`" in str(e):
            raise
        raise ValueError(
            f"`v` must have the structure of the parameters `wrt` picks, {structure}."
        ) from e
    for u, leaf in zip(given, leaves):
        check_finite("v", u)
        if u.shape != leaf.shape:
            what = "the weights" if wrt is _weights else "the parameters"
            raise ValueError(
                f"`v` must have the shape of {what}, {leaf.shape}, got {u.shape}."
            )
    v = structure.unflatten([u.astype(p.dtype) for u, p in zip(given, leaves)])
    I, T, x0, relaxation = _prepare(
        "hessian_vector_product", model, I, T, x0, relaxation, deprecated, wrt
    )
    return _hvp(model, I, T, x0, relaxation, wrt, v)


def hessian_eigenvalues(H: Float[ArrayLike, "..."]) -> Float[Array, " m"]:
    r"""The eigenvalues of a Hessian from [`neurodyn.hessian`][] (shape
    `weights.shape * 2`), as a symmetric $(W.size, W.size)$ matrix, ascending."""
    H = as_float_array("H", H)
    size = int(jnp.sqrt(H.size).round())
    half = H.shape[: H.ndim // 2]
    if (
        size * size != H.size
        or H.ndim % 2
        or H.ndim == 0
        or half != H.shape[H.ndim // 2 :]
    ):
        raise ValueError(f"`H` must have shape `weights.shape * 2`, got {H.shape}.")
    check_finite("H", H)
    H = H.reshape(size, size)
    return jnp.linalg.eigvalsh(0.5 * (H + H.T))


def hessian_along(
    models: PyTree,
    I: ArrayLike,
    T: ArrayLike,
    *,
    wrt: Callable[[AbstractNetwork], PyTree] = _weights,
    x0: ArrayLike | None = None,
    relaxation: Relaxation | None = None,
    **deprecated,
) -> Float[Array, "k m"]:
    """Hessian eigenvalues of every model in a stack (a leading axis on every array,
    as `History.snapshots` or `AnalogRun.model`), shape (K, W.size). `wrt` (one
    array), `x0`, `relaxation` as for [`neurodyn.hessian`][]."""
    check_network(models, "models")
    relaxation = as_relaxation("hessian_along", relaxation, deprecated)
    leaves = [leaf for leaf in jax.tree.leaves(models) if eqx.is_array(leaf)]
    k = leaves[0].shape[0]
    I = jnp.atleast_2d(as_patterns("I", I, leaves[0].shape[-1]))
    T = jnp.atleast_2d(as_patterns("T", T, leaves[0].shape[-1]))
    check_same_batch(I, T)
    return jnp.stack(
        [
            hessian_eigenvalues(
                hessian(
                    jax.tree.map(lambda a: a[j] if eqx.is_array(a) else a, models),
                    I,
                    T,
                    wrt=wrt,
                    x0=x0,
                    relaxation=relaxation,
                )
            )
            for j in range(k)
        ]
    )
