r"""Curvature of the error at the fixed point: $\partial^2 E/\partial W^2$, exactly,
through the implicit system $x^* = F(x^*; W, I)$.

The fixed point is made differentiable in forward mode by the implicit function
theorem: a tangent $\dot W$ moves it by

$$\dot x^* = (1 - \partial F/\partial x)^{-1}\,(\partial F/\partial W)\,\dot W,$$

one linear solve (lineax). The rule re-enters itself, so JAX differentiates it again
and $E(W) = \tfrac12\sum_a\sum_{i\in O}(T_i^a - x_i^{*a}(W))^2$ gets its exact Hessian
(forward over reverse); nothing is finite-differenced and the relaxation is never
unrolled. A Hessian-vector product costs a few linear solves per pattern and never
forms the $N^2 \times N^2$ matrix.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._models.base import AbstractNetwork
from .._relax import (
    ODERelaxation,
    as_relaxation,
    check_converged,
    initial_state,
    relax_patterns,
)
from .._validation import (
    as_float_array,
    as_patterns,
    as_start,
    check_finite,
    check_network,
    check_relaxation_options,
    check_same_batch,
)


def _with_weights(model: AbstractNetwork, weights: Array) -> AbstractNetwork:
    return eqx.tree_at(lambda m: m.weights, model, weights)


@eqx.filter_custom_jvp
def _implicit_state(weights, I, model, x0, *, relaxation):
    fp = relax_patterns(_with_weights(model, weights), I, x0, relaxation)
    return fp.x, fp


@_implicit_state.def_jvp
def _implicit_state_jvp(primals, tangents, *, relaxation):
    weights, I, model, x0 = primals
    t_weights, t_I, _, _ = tangents
    x, fp = _implicit_state(weights, I, model, x0, relaxation=relaxation)
    t_weights = jnp.zeros_like(weights) if t_weights is None else t_weights
    t_I = jax.tree.map(jnp.zeros_like, I) if t_I is None else t_I

    def drive(w, i, x_):
        return _with_weights(model, w).drive(x_, i)

    _, b = jax.jvp(lambda w, i: drive(w, i, x), (weights, I), (t_weights, t_I))
    operator = lx.FunctionLinearOperator(
        lambda v: v - jax.jvp(lambda x_: drive(weights, I, x_), (x,), (v,))[1],
        jax.ShapeDtypeStruct(x.shape, x.dtype),
    )
    t_x = lx.linear_solve(operator, b, lx.LU()).value
    t_fp = jax.tree.map(lambda _: None, fp)
    return (x, fp), (t_x, t_fp)


def _total_error(weights, model, I, T, x0, relaxation):
    """$E(W)$ summed over patterns, and the fixed points (for the convergence check)."""

    def one(i, t, x):
        x_star, fp = _implicit_state(weights, i, model, x, relaxation=relaxation)
        return 0.5 * jnp.sum(model.error(x_star, t) ** 2), fp

    errors, fp = jax.vmap(one)(I, T, x0)
    return jnp.sum(errors), fp


@eqx.filter_jit
def _hessian(model, I, T, x0, relaxation):
    weights = model.weights

    def grad(w):
        g, fp = jax.grad(_total_error, has_aux=True)(w, model, I, T, x0, relaxation)
        return g, fp

    H, fp = jax.jacfwd(grad, has_aux=True)(weights)
    return check_converged(fp, H)


@eqx.filter_jit
def _hvp(model, I, T, x0, relaxation, v):
    def grad(w):
        return jax.grad(_total_error, has_aux=True)(w, model, I, T, x0, relaxation)

    _, Hv, fp = jax.jvp(grad, (model.weights,), (v,), has_aux=True)
    return check_converged(fp, Hv)


def _prepare(model, I, T, x0, rtol, atol, t_max, max_steps):
    if not isinstance(model, AbstractNetwork) or not hasattr(model, "weights"):
        raise ValueError(
            "`model` must be a neurodyn network with a `weights` field, got "
            f"{type(model).__name__}."
        )
    check_relaxation_options(rtol, atol, t_max, max_steps)
    relaxation: ODERelaxation = as_relaxation(None, rtol, atol, t_max, max_steps)
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
    x0: ArrayLike | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    t_max: float | None = None,
    max_steps: int = 65_536,
) -> Float[Array, "..."]:
    r"""The Hessian of the error at the fixed point with respect to the weights,

    $$H_{ij,kl} = \frac{\partial^2 E}{\partial w_{ij}\,\partial w_{kl}},\qquad
      E = \tfrac12 \sum_a \sum_{i\in O}\big(T^a_i - x^{*}_i(W, I^a)\big)^2,$$

    exact through the implicit system (implicit-function-theorem tangents of $x^*$,
    differentiated forward over reverse). Connections outside `connectivity` have zero
    rows and columns.

    **Arguments:**

    - `model`: a network with a `weights` field.
    - `I`, `T`: sources and targets, $(N,)$ or $(P, N)$.

    **Other arguments:** `x0`, `rtol`, `atol`, `t_max`, `max_steps` as for
    [`neurodyn.relax`][] (they pick and resolve the fixed point).

    **Returns:** an array of shape `weights.shape * 2`; reshape it to
    $(W.size, W.size)$ for a matrix.

    **Raises:** the non-convergence error of [`neurodyn.value_and_grad`][] if a
    relaxation fails.
    """
    I, T, x0, relaxation = _prepare(model, I, T, x0, rtol, atol, t_max, max_steps)
    return _hessian(model, I, T, x0, relaxation)


def hessian_vector_product(
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike,
    v: ArrayLike,
    *,
    x0: ArrayLike | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    t_max: float | None = None,
    max_steps: int = 65_536,
) -> Float[Array, "..."]:
    r"""$H v = \frac{d}{d\epsilon}\nabla_W E(W + \epsilon v)\big|_{\epsilon=0}$
    without forming $H$: one forward-over-reverse pass (a few linear solves per
    pattern, $O(N^2)$ memory). `v` has the shape of `weights`, and so has the result.
    Other arguments as for [`neurodyn.hessian`][]."""
    check_network(model)
    v = as_float_array("v", v)
    check_finite("v", v)
    if v.shape != getattr(model, "weights", v).shape:
        raise ValueError(
            f"`v` must have the shape of the weights, {model.weights.shape}, got "
            f"{v.shape}."
        )
    I, T, x0, relaxation = _prepare(model, I, T, x0, rtol, atol, t_max, max_steps)
    return _hvp(model, I, T, x0, relaxation, v.astype(model.weights.dtype))


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
    models: PyTree, I: ArrayLike, T: ArrayLike, **kwargs
) -> Float[Array, "k m"]:
    """Hessian eigenvalues of every model in a stack (a leading axis on every array,
    as `History.snapshots` or `AnalogRun.model`), shape (K, W.size)."""
    check_network(models, "models")
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
                    **kwargs,
                )
            )
            for j in range(k)
        ]
    )
