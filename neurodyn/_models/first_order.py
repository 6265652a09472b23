r"""First-order networks: Pineda's eq 1 and the rate form of Zhu & Rosenbaum."""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from .._activations import Activation, logistic
from .._validation import (
    as_activation,
    as_connectivity,
    as_square_weights,
    as_time_constant,
    as_unit_mask,
)
from .base import AbstractClosedFormNetwork


class AbstractFirstOrderNetwork(AbstractClosedFormNetwork):
    r"""Shared parameters and closed forms of the two first-order families.

    Both have a weight matrix $W$ (structurally zero outside `connectivity`), a
    transfer function $g$, input units $A$ (where $I$ enters) and output units $O$.
    They differ only in where the input enters: outside $g$ (`FirstOrderNetwork`,
    $F = g(Wx) + I$) or inside it (`RateNetwork`, $F = g(Wx + I)$). In both the
    linearisation is $\partial F/\partial x = \mathrm{diag}(g'(u))\,W$, so the
    closed-form error and weight dynamics below are shared.
    """

    weights: Float[Array, "n n"]
    activation: Activation
    input_units: Bool[Array, " n"]
    output_units: Bool[Array, " n"]
    connectivity: Bool[Array, "n n"]
    tau: float = eqx.field(static=True)

    def __init__(
        self,
        weights: ArrayLike,
        activation: Activation | str = logistic,
        input_units: ArrayLike | None = None,
        output_units: ArrayLike | None = None,
        connectivity: ArrayLike | None = None,
        tau: float = 1.0,
    ):
        weights = as_square_weights(weights)
        n = weights.shape[0]
        connectivity = as_connectivity(connectivity, n)
        self.weights = weights
        self.activation = as_activation("activation", activation)
        self.input_units = as_unit_mask("input_units", input_units, n)
        self.output_units = as_unit_mask("output_units", output_units, n)
        self.connectivity = connectivity
        self.tau = as_time_constant(tau)

    @property
    def effective_weights(self) -> Float[Array, "n n"]:
        """$W$ with the entries outside `connectivity` set to (structural) zero."""
        return jnp.where(self.connectivity, self.weights, 0)

    def external_input(self, I: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$I_i\,\delta_{iA}$: the source reaches input units only (Pineda eq 5)."""
        return jnp.where(self.input_units, I, 0)

    def training_source(
        self, I: Float[Array, " n"], T: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """The source `I` itself: the network learns under its free dynamics."""
        del T
        return I

    @abc.abstractmethod
    def net_input(
        self, x: Float[Array, " n"], I: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """The argument $u$ of $g$."""

    def error_dynamics(
        self,
        y: Float[Array, " n"],
        x: Float[Array, " n"],
        I: Float[Array, " n"],
        J: Float[Array, " n"],
    ) -> Float[Array, " n"]:
        r"""Pineda's closed-form backward error dynamics (eq 17), times $\tau$:

        $$\tau\, dy_k/dt = -y_k + g'(u_k)\Big(\sum_r w_{rk}\, y_r + J_k\Big).$$

        Its fixed point $y^*$ is the error signal of eq 14; with the generic adjoint
        $z^*$ of [`neurodyn.RecurrentBackprop`][] it satisfies $y^* = g'(u) \odot z^*$.
        """
        u = self.net_input(x, I)
        return -y + self.activation.derivative(u) * (self.effective_weights.T @ y + J)

    def weight_dynamics(
        self, y: Float[Array, " n"], x: Float[Array, " n"], I: Float[Array, " n"]
    ) -> Float[Array, "n n"]:
        r"""Pineda's outer-product learning rule without $\eta$ (eq 13):
        $dw_{rs}/dt \propto y_r x_s$, zero outside `connectivity`."""
        del I
        return jnp.where(self.connectivity, jnp.outer(y, x), 0)


AbstractFirstOrderNetwork.__init__.__doc__ = """**Arguments:**

- `weights`: the $(N, N)$ weight matrix $W$; $w_{ij}$ is the connection from unit $j$
    to unit $i$.
- `activation`: the transfer function $g$, default [`neurodyn.logistic`][]; a
    built-in one may be given by name (`"tanh"`).
- `input_units`: boolean mask $(N,)$ of the units $A$ the source $I$ reaches;
    `None` means every unit.
- `output_units`: boolean mask $(N,)$ of the units $O$ that carry targets; `None`
    means every unit.
- `connectivity`: boolean mask $(N, N)$ of the connections that exist; weights outside
    it are never used and always get zero gradient. `None` means fully connected.
- `tau`: the time constant $\\tau > 0$.
"""


class FirstOrderNetwork(AbstractFirstOrderNetwork):
    r"""Pineda's recurrent network of first-order units (eq 1):

    $$\tau\, \frac{dx_i}{dt} = -x_i + g\Big(\sum_j w_{ij} x_j\Big) + I_i\,\delta_{iA}.$$

    ??? cite "References"

        ```bibtex
        @inproceedings{pineda1987generalization,
          title={Generalization of back propagation to recurrent and higher order
                 neural networks},
          author={Pineda, Fernando J.},
          booktitle={Neural Information Processing Systems},
          pages={602--611},
          year={1987}
        }
        ```
    """

    def net_input(
        self, x: Float[Array, " n"], I: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        r"""$u = W x$."""
        del I
        return self.effective_weights @ x

    def drive(self, x: Float[Array, " n"], I: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$F(x) = g(Wx) + I\,\delta_A$."""
        return self.activation(self.net_input(x, I)) + self.external_input(I)


class RateNetwork(AbstractFirstOrderNetwork):
    r"""The rate model with the input inside the transfer function (Zhu & Rosenbaum):

    $$\tau\, \frac{dr}{dt} = -r + f(W r + x),$$

    where the source (their $x$, our `I`) reaches the input units $A$ only.

    ??? cite "References"

        ```bibtex
        @article{zhu2024learning,
          title={Learning fixed points of recurrent neural networks by
                 reparameterizing the network model},
          author={Zhu, Vicky and Rosenbaum, Robert},
          journal={Neural Computation},
          year={2024}
        }
        ```
    """

    def net_input(
        self, x: Float[Array, " n"], I: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        r"""$u = W r + x\,\delta_A$."""
        return self.effective_weights @ x + self.external_input(I)

    def drive(self, x: Float[Array, " n"], I: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$F(r) = f(W r + x\,\delta_A)$."""
        return self.activation(self.net_input(x, I))
