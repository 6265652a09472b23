r"""The implicit function theorem at a fixed point, in forward mode with its
transpose: one rule under every adjoint gradient method, the Hessians and the
continuation of fixed points along learning (its predictor).

The fixed point $x^* = F(x^*; \theta, I)$ moves with a tangent $(\dot\theta, \dot I)$
of the model and source (any pytrees) by

$$(1 - A)\,\dot x = \frac{\partial F}{\partial\theta}\dot\theta +
  \frac{\partial F}{\partial I}\dot I, \qquad A = \frac{\partial F}{\partial x}
  \Big|_{x^*}.$$

Reverse mode is the transpose, which JAX derives: the adjoint solve
$(1 - A)^T z = \bar x$, then $\bar\theta = (\partial F/\partial\theta)^T z$ and
$\bar I = (\partial F/\partial I)^T z$. The two solves are paired by
`jax.lax.custom_linear_solve`: the adjoint one is the gradient method's
`solve_adjoint`, the tangent one its transpose (for a lineax solve, the same solver
on $1 - A$; for a relaxation, the relaxation of $\tau\dot v = -v + Av + b$). The
rule calls itself for the state it linearises at, so it differentiates again: a
Hessian is forward mode over reverse mode, and nothing is unrolled.
"""

import equinox as eqx
import jax
import jax.extend
from jaxtyping import Array, Bool, Float, PyTree

from ._batch import batched
from ._results import RESULTS, error_if_any
from ._solvers.base import Relaxation


def batched_drive(
    model_and_input: PyTree, x: Float[Array, "*p n"]
) -> Float[Array, "*p n"]:
    """$F(x; \\theta, I)$ for one pattern or a batch (leading axis on `x`, `I`)."""
    model, I = model_and_input
    return batched(model.drive, x, I)


@eqx.filter_custom_jvp
def implicit_state(
    model_and_input: PyTree,
    *,
    x_star: Float[Array, "*p n"],
    converged: Bool[Array, "*p"],
    method,
    relaxation: Relaxation | None,
) -> Float[Array, "*p n"]:
    r"""`x_star` (a fixed point of `model` under the source `I`, relaxed and not
    differentiated), as a differentiable function of `(model, I)` by the implicit
    function theorem. `method` is an `AbstractAdjointMethod`: its `solve_adjoint`
    (with `relaxation`) solves $(1 - A)^T z = \bar x$; an adjoint that fails where
    the forward relaxation `converged` raises its message."""
    del model_and_input, converged, method, relaxation
    return x_star


@implicit_state.def_jvp
def _implicit_state_jvp(primals, tangents, *, x_star, converged, method, relaxation):
    (model_and_input,) = primals
    (t_model_and_input,) = tangents
    # Re-entrant: at second order the state carries its own implicit tangent.
    x = implicit_state(
        model_and_input,
        x_star=x_star,
        converged=converged,
        method=method,
        relaxation=relaxation,
    )
    model, I = model_and_input
    _, b = eqx.filter_jvp(
        lambda m_i: batched_drive(m_i, x), (model_and_input,), (t_model_and_input,)
    )
    _, A = jax.linearize(lambda x_: batched_drive(model_and_input, x_), x)

    def solve_each(x_, i, s):
        return method.solve_adjoint(model, x_, i, s, relaxation)

    # Traced once, evaluated by both solves: the adjoint solve and its transpose,
    # for one pattern or vmapped over a batch.
    closed, shapes = jax.make_jaxpr(
        lambda s: batched(solve_each, x, I, s), return_shape=True
    )(b)
    structure = jax.tree.structure(shapes)

    def solve_adjoint(source):
        return jax.tree.unflatten(
            structure, jax.extend.core.jaxpr_as_fun(closed)(source)
        )

    def adjoint(_, source):
        z, result = solve_adjoint(source)
        return error_if_any(z, result, converged & (result != RESULTS.successful))

    def tangent(_, source):
        (v,) = jax.linear_transpose(lambda s: solve_adjoint(s)[0], source)(source)
        return v

    t_x = jax.lax.custom_linear_solve(
        lambda v: v - A(v), b.astype(x.dtype), tangent, adjoint
    )
    return x, t_x


def stop_gradients(tree: PyTree) -> PyTree:
    """`tree` with no gradient through its floating-point arrays (other leaves, such
    as activations, pass as they are)."""
    return jax.tree.map(
        lambda a: jax.lax.stop_gradient(a) if eqx.is_inexact_array(a) else a, tree
    )
