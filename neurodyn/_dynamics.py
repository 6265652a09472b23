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
from jaxtyping import Array, Float, PyTree

from ._models.base import AbstractNetwork


def forward_field(
    model: AbstractNetwork,
    x: Float[Array, " n"],
    I: PyTree,
) -> Float[Array, " n"]:
    r"""$dx/dt = (-x + F(x))/\tau$."""
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
    return linearised_adjoint_field(model, x, I, J)(z)


def linearised_adjoint_field(
    model: AbstractNetwork,
    x: Float[Array, " n"],
    I: PyTree,
    J: Float[Array, " n"],
) -> Callable[[Float[Array, " n"]], Float[Array, " n"]]:
    r"""The adjoint field $z \mapsto (-z + (\partial F/\partial x)^T z + J)/\tau$ at
    $x$, linearised once: each evaluation is then one transposed Jacobian-vector
    product (for a first-order network, $W^T (g'(u) \odot z)$)."""
    _, vjp = jax.vjp(lambda x_: model.drive(x_, I), x)

    def field(z):
        (a_t_z,) = vjp(z)
        return (-z + a_t_z + J) / model.tau

    return field


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

    def drive(m, i):
        return m.drive(x, i) if x.ndim == 1 else jax.vmap(m.drive)(x, i)

    _, vjp = eqx.filter_vjp(drive, model, I)
    return vjp(z)
