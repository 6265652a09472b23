"""Unit transfer functions $g$ (and $f$) with their derivatives."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike


class Activation(eqx.Module):
    """A differentiable unit transfer function $g$ and its derivative $g'$.

    Pineda's formalism needs nothing of $g$ beyond differentiability; the derivative is
    written out (rather than left to autodiff) because it appears explicitly in the
    closed-form error dynamics $dy/dt = -y + g'(u)(W^T y + J)$ (eq 17).

    Instances are compared and hashed by `name`, so they are safe static arguments.
    """

    name: str = eqx.field(static=True)
    fn: Callable[[Array], Array] = eqx.field(static=True)
    derivative: Callable[[Array], Array] = eqx.field(static=True)

    def __call__(self, u: ArrayLike) -> Array:
        return self.fn(jnp.asarray(u))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Activation) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("neurodyn.Activation", self.name))


Activation.__init__.__doc__ = """**Arguments:**

- `name`: the name used in run folders and messages, e.g. `"logistic"`.
- `fn`: $g$, applied elementwise.
- `derivative`: $g'$, applied elementwise.
"""


def _logistic_derivative(u: Array) -> Array:
    s = jax.nn.sigmoid(u)
    return s * (1 - s)


logistic = Activation("logistic", jax.nn.sigmoid, _logistic_derivative)

tanh = Activation("tanh", jnp.tanh, lambda u: 1 - jnp.tanh(u) ** 2)
sin = Activation("sin", jnp.sin, jnp.cos)
softplus = Activation("softplus", jax.nn.softplus, jax.nn.sigmoid)
identity = Activation("identity", lambda u: u, jnp.ones_like)

ACTIVATIONS: dict[str, Activation] = {
    a.name: a for a in (logistic, tanh, sin, softplus, identity)
}


def activation_by_name(name: str) -> Activation:
    """Look up a built-in activation by its `name` (as written in run folders)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"`name`: Unknown activation {name!r}; expected one of "
            f"{sorted(ACTIVATIONS)}."
        ) from None
