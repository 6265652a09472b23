r"""A Hopfield-type network whose dynamics descend an energy (Scellier & Bengio)."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Scalar

from .._activations import Activation, logistic
from .._validation import (
    as_activation,
    as_connectivity,
    as_square_weights,
    as_time_constant,
    as_unit_mask,
)
from .base import AbstractNetwork


class EnergyNetwork(AbstractNetwork):
    r"""A continuous Hopfield network: gradient descent on the energy

    $$E(s) = \tfrac12 \|s\|^2 - \tfrac12\, \rho(s)^T W \rho(s)
      - (I\,\delta_A)^T \rho(s),\qquad
      \tau\,\frac{ds}{dt} = -\frac{\partial E}{\partial s}
      = -s + \rho'(s) \odot \big(W \rho(s) + I\,\delta_A\big),$$

    with $W$ symmetric (Scellier & Bengio's eqs 1, 2, bias folded into the source).
    The drive is $F(s) = \rho'(s) \odot (W\rho(s) + I\,\delta_A)$ and the Jacobian
    $\partial F/\partial s = 1 - \partial^2 E/\partial s^2$ is symmetric: the
    condition under which [`neurodyn.EquilibriumPropagation`][] gives the gradient.

    The weights used are the symmetric part $W = (W_0 + W_0^T)/2$ of the stored
    `weights` $W_0$ inside the (symmetric) `connectivity`, so any optimizer step keeps
    the network an energy network.

    ??? cite "References"

        ```bibtex
        @article{scellier2017equilibrium,
          title={Equilibrium propagation: bridging the gap between energy-based
                 models and backpropagation},
          author={Scellier, Benjamin and Bengio, Yoshua},
          journal={Frontiers in Computational Neuroscience},
          volume={11},
          pages={24},
          year={2017}
        }
        ```
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
        if not bool(jnp.all(connectivity == connectivity.T)):
            raise ValueError(
                "`connectivity` must be symmetric (an energy network's connections "
                "are undirected); try `mask | mask.T`."
            )
        self.weights = weights
        self.activation = as_activation("activation", activation)
        self.input_units = as_unit_mask("input_units", input_units, n)
        self.output_units = as_unit_mask("output_units", output_units, n)
        self.connectivity = connectivity
        self.tau = as_time_constant(tau)

    @property
    def effective_weights(self) -> Float[Array, "n n"]:
        r"""$W = (W_0 + W_0^T)/2$ inside `connectivity`, zero outside."""
        return jnp.where(self.connectivity, (self.weights + self.weights.T) / 2, 0)

    def external_input(self, I: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$I_i\,\delta_{iA}$: the source reaches input units only."""
        return jnp.where(self.input_units, I, 0)

    def energy(self, s: Float[Array, " n"], I: Float[Array, " n"]) -> Scalar:
        r"""$E(s) = \tfrac12\|s\|^2 - \tfrac12 \rho(s)^T W \rho(s)
        - (I\,\delta_A)^T \rho(s)$."""
        rho = self.activation(s)
        return (
            0.5 * jnp.sum(s**2)
            - 0.5 * rho @ self.effective_weights @ rho
            - self.external_input(I) @ rho
        )

    def training_source(
        self, I: Float[Array, " n"], T: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """The source `I` itself: the network learns under its free dynamics."""
        del T
        return I

    def drive(self, x: Float[Array, " n"], I: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$F(s) = \rho'(s) \odot (W\rho(s) + I\,\delta_A)$, so that
        $-s + F(s) = -\partial E/\partial s$."""
        field = self.effective_weights @ self.activation(x) + self.external_input(I)
        return self.activation.derivative(x) * field


EnergyNetwork.__init__.__doc__ = """**Arguments:**

- `weights`: the $(N, N)$ matrix $W_0$ whose symmetric part is used.
- `activation`: $\\rho$, default [`neurodyn.logistic`][] (bounded, so $E$ is bounded
    below and every relaxation settles).
- `input_units`: boolean mask $(N,)$ of the units the source reaches; `None`: all.
- `output_units`: boolean mask $(N,)$ of the units with targets; `None`: all.
- `connectivity`: symmetric boolean mask $(N, N)$; `None`: fully connected.
- `tau`: the time constant $\\tau > 0$.
"""
