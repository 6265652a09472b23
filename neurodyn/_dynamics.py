r"""The three vector fields of an adaptive network, built from any model's drive.

- forward: $\tau\, dx/dt = -x + F(x)$ (Pineda eq 1);
- adjoint: $\tau\, dz/dt = -z + (\partial F/\partial x)^T z + J$ (the generic form of
  eq 17), whose linearisation is the transpose of the forward one;
- weights: $d\theta/dt = \eta\, (\partial F/\partial \theta)^T z$ (the generic form of
  eq 13; for a first-order network this is the outer product $\eta\, y x^T$ with
  $y = g'(u) \odot z$).
"""

from collections.abc import Callable

import equinox as eqx
import jax
import lineax as lx
from jaxtyping import Array, Float, PyTree

from ._batch import batched
from ._models.base import AbstractNetwork
from ._validation import as_patterns, check_network


def _checked(model: AbstractNetwork, **states) -> list[Array]:
    """The model and the states `x`, `z`, `J` of its fields: a network, and float
    arrays of shape `(N,)` or `(P, N)`, finite when concrete."""
    check_network(model)
    return [as_patterns(name, value, model.n_units) for name, value in states.items()]


def forward_field(
    model: AbstractNetwork,
    x: Float[Array, " n"],
    I: PyTree,
) -> Float[Array, " n"]:
    r"""$dx/dt = (-x + F(x))/\tau$."""
    (x,) = _checked(model, x=x)
    return model.vector_field(x, I)


def adjoint_field(
    model: AbstractNetwork,
    x: Float[Array, " n"],
    I: PyTree,
    z: Float[Array, " n"],
    J: Float[Array, " n"],
) -> Float[Array, " n"]:
    r"""$dz/dt = (-z + (\partial F/\partial x)^T z + J)/\tau$, by one `jax.vjp` of the
    drive at $x$ (no Jacobian is formed)."""
    x, z, J = _checked(model, x=x, z=z, J=J)
    return linearised_adjoint_field(model, x, I, J)(z)


def relaxation_operator(
    model: AbstractNetwork,
    x: Float[Array, " n"],
    I: PyTree,
    *,
    transpose: bool = False,
) -> lx.FunctionLinearOperator:
    r"""$1 - \partial F/\partial x$ at $x$ (or, with `transpose`, its transpose
    $1 - (\partial F/\partial x)^T$, the operator of the adjoint fixed point
    $(1 - A^T)\,z = J$), matrix-free: the drive is linearised once and each product
    is one Jacobian-vector product (transposed: one vector-Jacobian product; for a
    first-order network $W^T(g'(u) \odot z)$)."""
    drive = lambda x_: model.drive(x_, I)  # noqa: E731
    if transpose:
        _, vjp = jax.vjp(drive, x)
        product = lambda w: vjp(w)[0]  # noqa: E731
    else:
        _, product = jax.linearize(drive, x)
    return lx.FunctionLinearOperator(
        lambda w: w - product(w), jax.ShapeDtypeStruct(x.shape, x.dtype)
    )


def linearised_adjoint_field(
    model: AbstractNetwork,
    x: Float[Array, " n"],
    I: PyTree,
    J: Float[Array, " n"],
) -> Callable[[Float[Array, " n"]], Float[Array, " n"]]:
    r"""The adjoint field $z \mapsto (-z + (\partial F/\partial x)^T z + J)/\tau
    = (J - (1 - A^T) z)/\tau$ at $x$, linearised once (`relaxation_operator`)."""
    operator = relaxation_operator(model, x, I, transpose=True)
    return lambda z: (J - operator.mv(z)) / model.tau


def learning_velocities(
    model: AbstractNetwork,
    x: Float[Array, "p n"],
    I: PyTree,
    z: Float[Array, "p n"],
    J: Float[Array, "p n"],
) -> tuple[Float[Array, "p n"], Float[Array, "p n"], PyTree]:
    r"""The three velocities of a batch of patterns $a$ from ONE evaluation of the
    batched drive and ONE vector-Jacobian product of it:

    $$\tau\dot x_a = -x_a + F(x_a),\qquad
      \tau\dot z_a = -z_a + (\partial F/\partial x)^T z_a + J_a,\qquad
      v = \sum_a (\partial F/\partial\theta)^T z_a .$$

    The pullback of the batched drive with cotangent $z$ gives both
    $(\partial F/\partial x)^T z_a$ and the parameter cotangent summed over the
    patterns, so for a first-order network the work is three matrix products of the
    whole batch, $U = X W^T$, $(g'(U) \odot Z)\,W$ and $(g'(U) \odot Z)^T X$, and
    never $P$ separate $N \times N$ outer products. `v` has the structure of
    `model` (None on masks and static fields); it is $d\theta/dt$ per unit $\eta$.
    """
    x, z, J = _checked(model, x=x, z=z, J=J)
    drive, pullback = eqx.filter_vjp(lambda m, x_: jax.vmap(m.drive)(x_, I), model, x)
    velocity, a_t_z = pullback(z)
    return (drive - x) / model.tau, (-z + a_t_z + J) / model.tau, velocity


def parameter_cotangent(
    model: AbstractNetwork,
    x: Float[Array, "*p n"],
    I: PyTree,
    z: Float[Array, "*p n"],
) -> tuple[PyTree, PyTree]:
    r"""$\big((\partial F/\partial\theta)^T z,\ (\partial F/\partial I)^T z\big)$ at
    $x$; for a batch (leading pattern axis on `x`, `I`, `z`) the first entry is summed
    over the patterns.

    With $z = z^*$ the adjoint fixed point for source $J$, the first entry is the
    weight velocity $d\theta/dt$ per unit $\eta$, i.e. $-\partial E/\partial\theta$.
    The result has the structure of `model` (None on masks and static fields); the
    second that of `I`, which may be a pytree (a model's `training_source`).
    """

    x, z = _checked(model, x=x, z=z)

    def drive(m, i):
        return batched(m.drive, x, i)

    _, vjp = eqx.filter_vjp(drive, model, I)
    return vjp(z)
