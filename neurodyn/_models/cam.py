r"""Pineda's adaptive content-addressable memory (Example 3, eqs 28-39).

One weight matrix $W$ serves two dynamics. The **slave** is the free network of
eq 1, $\tau\,\dot x = -x + g(Wx) + I$; it performs recall. The **master** is the
same network with its visible units clamped to a memory inside the sum,
$\tau\,\dot z = -z + g(WZ) + I$ with $Z = T$ on visible and $z$ on hidden units
(eqs 29, 30); it is what learns. A fixed point of the master whose visible units
have relaxed to $T$ is a fixed point of the slave, so training the master stores
the memories as attractors of the slave.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from .._activations import Activation, logistic
from .._validation import (
    as_activation,
    as_square_weights,
    as_time_constant,
    as_unit_mask,
)
from .base import AbstractClosedFormNetwork


class Clamped(eqx.Module):
    """The source of the master network for one memory: the bias `I` and the memory
    `T` whose visible components are clamped into the weighted sum (eq 30).

    [`neurodyn.ContentAddressableMemory.training_source`][] builds it; the
    learning machinery passes it to `drive` in place of a plain source.
    """

    I: Float[Array, " n"]
    T: Float[Array, " n"]


class ContentAddressableMemory(AbstractClosedFormNetwork):
    r"""Pineda's master/slave content-addressable memory sharing one $W$.

    **Slave** (recall; eq 1 with no distinction between input and output units):

    $$\tau\,\frac{dx_i}{dt} = -x_i + g\Big(\sum_k w_{ik} x_k\Big) + I_i .$$

    **Master** (learning; eqs 29, 30), for a memory $T$:

    $$\tau\,\frac{dz_i}{dt} = -z_i + g\Big(\sum_k w_{ik} Z_k\Big) + I_i, \qquad
      Z_k = T_k\,\delta_{kV} + z_k\,\delta_{kH},$$

    equivalently $-z_i + g(\sum_{k\in H} w_{ik} z_k - \theta_i) + I_i$ with the
    target-dependent thresholds $\theta_i = -\sum_{k\in V} w_{ik} T_k$ (eqs 31, 32).
    Its error is $E_{\text{master}} = \tfrac12\sum_i J_i^2$,
    $J_i = (T_i - z_i^*)\,\delta_{iV}$ (eqs 33, 34).

    `drive(x, I)` is the slave for a plain array source and the master for a
    [`neurodyn.Clamped`][] source, which `training_source(I, T)` returns. Hence
    [`neurodyn.relax`][] relaxes the slave, and [`neurodyn.value_and_grad`][],
    [`neurodyn.train`][] and [`neurodyn.analog_learning`][] learn by the master,
    with `T` the memories $(P, N)$ (hidden entries are ignored) and `I` the bias
    (usually zeros). Recall from a partial cue: [`neurodyn.recall`][].

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

    weights: Float[Array, "n n"]
    visible_units: Bool[Array, " n"]
    activation: Activation
    tau: float = eqx.field(static=True)

    def __init__(
        self,
        weights: ArrayLike,
        visible_units: ArrayLike,
        activation: Activation | str = logistic,
        tau: float = 1.0,
    ):
        weights = as_square_weights(weights)
        n = weights.shape[0]
        if visible_units is None:
            raise ValueError(
                f"`visible_units` must be a boolean mask of shape ({n},) marking the "
                "units that hold a memory; got None."
            )
        visible_units = as_unit_mask("visible_units", visible_units, n)
        if not bool(jnp.any(visible_units)):
            raise ValueError("`visible_units` must mark at least one visible unit.")
        self.weights = weights
        self.visible_units = visible_units
        self.activation = as_activation("activation", activation)
        self.tau = as_time_constant(tau)

    @property
    def output_units(self) -> Bool[Array, " n"]:
        """The visible units $V$: the error is measured there (eq 34)."""
        return self.visible_units

    @property
    def hidden_units(self) -> Bool[Array, " n"]:
        """The hidden units $H$, the complement of $V$."""
        return ~self.visible_units

    def training_source(self, I: Float[Array, " n"], T: Float[Array, " n"]) -> Clamped:
        """The master's source for memory `T` with bias `I` (eqs 29, 30)."""
        return Clamped(I, T)

    def clamped_state(
        self, z: Float[Array, " n"], T: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        r"""$Z_k = T_k\,\delta_{kV} + z_k\,\delta_{kH}$ (eq 30)."""
        return jnp.where(self.visible_units, T, z)

    def thresholds(self, T: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$\theta_i = -\sum_{k\in V} w_{ik} T_k$, the master's target-dependent
        thresholds (eq 32)."""
        return -(self.weights @ jnp.where(self.visible_units, T, 0))

    def drive(
        self, x: Float[Array, " n"], I: Float[Array, " n"] | Clamped
    ) -> Float[Array, " n"]:
        r"""Slave (array `I`): $F(x) = g(Wx) + I$ (eq 1). Master ([`neurodyn.Clamped`][]
        source): $F(z) = g(WZ) + I$ with $Z$ of eq 30 (eq 29)."""
        if isinstance(I, Clamped):
            return self.activation(self.weights @ self.clamped_state(x, I.T)) + I.I
        return self.activation(self.weights @ x) + I

    def error_dynamics(
        self,
        y: Float[Array, " n"],
        x: Float[Array, " n"],
        I: Clamped,
        J: Float[Array, " n"],
    ) -> Float[Array, " n"]:
        r"""The master's closed-form backward error dynamics (eq 36), times $\tau$,
        at its fixed point $z^*$ = `x` for the [`neurodyn.Clamped`][] source `I`
        (`training_source(I, T)`):

        $$\tau\,\frac{dy_k}{dt} = -y_k + g'(v_k)\Big(\delta_{kH}\sum_r w_{rk}\,y_r
          + J_k\Big), \qquad v_i = \sum_k w_{ik} Z_k \quad\text{(eq 37)}.$$

        Only hidden units pass the error back: the visible components of $Z$ are
        the clamped memory, not state. With $z^*$ the generic adjoint fixed point,
        $y^* = g'(v) \odot z^*$.
        """
        v = self.weights @ self.clamped_state(x, I.T)
        back = jnp.where(self.hidden_units, self.weights.T @ y, 0)
        return -y + self.activation.derivative(v) * (back + J)

    def weight_dynamics(
        self, y: Float[Array, " n"], x: Float[Array, " n"], I: Clamped
    ) -> Float[Array, "n n"]:
        r"""The master's learning rule without $\eta$ (eq 35), at its fixed point
        $z^*$ = `x` for the [`neurodyn.Clamped`][] source `I`: $dw_{ij}/dt \propto
        y_i Z_j$, an outer product with the clamped state $Z$ (eq 30), not $z$."""
        return jnp.outer(y, self.clamped_state(x, I.T))


ContentAddressableMemory.__init__.__doc__ = """**Arguments:**

- `weights`: the $(N, N)$ weight matrix $W$ shared by master and slave; $w_{ik}$ is
    the connection from unit $k$ to unit $i$.
- `visible_units`: boolean mask $(N,)$ of the visible units $V$ (the memory); the
    others are hidden ($H$).
- `activation`: the transfer function $g$, default [`neurodyn.logistic`][]; a
    built-in one may be given by name.
- `tau`: the time constant $\\tau > 0$.
"""
