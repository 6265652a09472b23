r"""Higher-order (tensor) networks: Pineda's example 2 (eqs 21-27)."""

import string

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from .._activations import Activation, logistic
from .._validation import (
    as_activation,
    as_float_array,
    as_time_constant,
    as_unit_mask,
    check_finite,
)
from .base import AbstractClosedFormNetwork


# einsum letters for the n + 1 indices of an n-th order weight tensor.
_LETTERS = string.ascii_lowercase


class HigherOrderNetwork(AbstractClosedFormNetwork):
    r"""Pineda's recurrent network of purely $n$-th order units (eqs 21, 22):

    $$\tau\,\frac{dx_i}{dt} = -x_i + g(u_i) + I_i\,\delta_{iA},\qquad
      u_i = \sum_{j,\dots,l} w_{ij\dots l}\, f(x_j)\cdots f(x_l),$$

    with a weight tensor of $n + 1$ indices (the sum runs over all but $i$), a
    transfer function $g$ outside (`activation`) and a function $f$ inside (`inner`).
    The order is $n$ = `weights.ndim - 1`; $n = 1$ with $f$ the identity is
    [`neurodyn.FirstOrderNetwork`][].

    The drive contracts $W$ with $f(x)$ one index at a time, so no intermediate is
    larger than $W$. Relaxation, every gradient method and learning work from
    `drive` alone; the paper's closed forms are written out as methods:
    `error_dynamics` (eqs 24-26), `weight_dynamics` (eq 23) and `stability_matrix`
    (eq 27).

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

    weights: Float[Array, " n *rest"]
    activation: Activation
    inner: Activation
    input_units: Bool[Array, " n"]
    output_units: Bool[Array, " n"]
    tau: float = eqx.field(static=True)

    def __init__(
        self,
        weights: ArrayLike,
        activation: Activation | str = logistic,
        inner: Activation | str = logistic,
        input_units: ArrayLike | None = None,
        output_units: ArrayLike | None = None,
        tau: float = 1.0,
    ):
        weights = as_float_array("weights", weights)
        n = weights.shape[0] if weights.ndim else 0
        if weights.ndim < 2 or any(d != n for d in weights.shape):
            raise ValueError(
                "`weights` must be a tensor of shape (N,)*(order+1) with order >= 1, "
                f"e.g. (N, N, N) for second order; got shape {weights.shape}."
            )
        if weights.ndim > len(_LETTERS):
            raise ValueError(
                f"`weights` of order {weights.ndim - 1} is beyond the supported "
                f"maximum {len(_LETTERS) - 1}."
            )
        check_finite("weights", weights)
        self.weights = weights
        self.activation = as_activation("activation", activation)
        self.inner = as_activation("inner", inner)
        self.input_units = as_unit_mask("input_units", input_units, n)
        self.output_units = as_unit_mask("output_units", output_units, n)
        self.tau = as_time_constant(tau)

    @property
    def order(self) -> int:
        """The order $n$ of the units: `weights.ndim - 1`."""
        return self.weights.ndim - 1

    def external_input(self, I: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$I_i\,\delta_{iA}$: the source reaches input units only."""
        return jnp.where(self.input_units, I, 0)

    def net_input(
        self, x: Float[Array, " n"], I: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        r"""$u_i = \sum_{j\dots l} w_{ij\dots l}\, f(x_j)\cdots f(x_l)$ (eq 22), by
        $n$ successive contractions of the last index with $f(x)$."""
        del I
        fx = self.inner(x)
        u = self.weights
        for _ in range(self.order):
            u = u @ fx
        return u

    def training_source(
        self, I: Float[Array, " n"], T: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """The source `I` itself: the network learns under its free dynamics."""
        del T
        return I

    def drive(self, x: Float[Array, " n"], I: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$F(x) = g(u) + I\,\delta_A$ (eq 21), with $u$ from eq 22."""
        return self.activation(self.net_input(x, I)) + self.external_input(I)

    def symmetrised_weights(self) -> Float[Array, " n *rest"]:
        r"""Pineda's tensor $S$ (eq 26): $W$ plus its second index exchanged with
        each later one,

        $$S_{ijk\dots l} = w_{ijk\dots l} + w_{ikj\dots l} + \dots + w_{ilk\dots j}$$

        ($n$ terms, the identity included; same size as $W$). Contracted with $f(x)$
        on all but its first two indices it gives $V$ (eq 25). For $n = 2$ it is
        symmetric in its last two indices; for $n > 2$ the tensor
        itself is not fully symmetric, but its contraction
        $V_{ij} = \partial u_i/\partial f(x_j)$ is all the adjoint needs.
        """
        w = self.weights
        return sum(jnp.swapaxes(w, 1, p) for p in range(1, self.order + 1))

    def coupling_matrix(self, x: Float[Array, " n"]) -> Float[Array, "n n"]:
        r"""The state-dependent matrix $V$ of eq 25,

        $$V_{ij} = \sum_{k\dots l} S_{ijk\dots l}\, f(x_k)\cdots f(x_l),$$

        ($n - 1$ factors; $V = W$ at first order). It is
        $\partial u_i / \partial f(x_j)$, so the forward Jacobian is
        $\partial F_i/\partial x_j = g'(u_i)\, V_{ij}\, f'(x_j)$.
        """
        fx = self.inner(x)
        v = self.symmetrised_weights()
        for _ in range(self.order - 1):
            v = v @ fx
        return v

    def error_dynamics(
        self,
        y: Float[Array, " n"],
        x: Float[Array, " n"],
        I: Float[Array, " n"],
        J: Float[Array, " n"],
    ) -> Float[Array, " n"]:
        r"""Pineda's closed-form backward error dynamics for $n$-th order units
        (eq 24), times $\tau$:

        $$\tau\,\frac{dy_k}{dt} = -y_k + g'(u_k)\Big\{f'(x_k) \sum_r V_{rk}\, y_r
          + J_k\Big\},$$

        with $V$ from eqs 25, 26 (`coupling_matrix`). $g'$ multiplies the whole
        bracket and $f'$ only the feedback term: with $z$ the generic adjoint
        ($z = (\partial F/\partial x)^T z + J$) and $y = g'(u)\odot z$, the
        generic equation becomes exactly this one.
        """
        u = self.net_input(x, I)
        V = self.coupling_matrix(x)
        return -y + self.activation.derivative(u) * (
            self.inner.derivative(x) * (V.T @ y) + J
        )

    def weight_dynamics(
        self, y: Float[Array, " n"], x: Float[Array, " n"], I: Float[Array, " n"]
    ) -> Float[Array, " n *rest"]:
        r"""Pineda's $n$-th order learning rule without $\eta$ (eq 23), an outer
        product of $y$ with $n$ copies of $f(x)$:

        $$\frac{dw_{ij\dots l}}{dt} \propto y_i\, f(x_j)\cdots f(x_l).$$
        """
        del I
        fx = self.inner(x)
        letters = _LETTERS[: self.order + 1]
        spec = ",".join(letters) + "->" + letters
        return jnp.einsum(spec, y, *([fx] * self.order))

    def stability_matrix(
        self, x: Float[Array, " n"], I: Float[Array, " n"]
    ) -> Float[Array, "n n"]:
        r"""The matrix $L = 1 - \partial F/\partial x$ whose eigenvalues decide the
        local stability of the forward (and so of the backward) dynamics (eq 27):

        $$L_{ij} = \delta_{ij} - g'(u_i)\, V_{ij}\, f'(x_j),$$

        so that $\tau\, d\,\delta x/dt = -L\,\delta x$ near a fixed point.

        !!! note
            The paper prints $L_{ij} = \delta_{ij} - g_i'(u_i) f_i'(x_i) V_{ij}$
            ($f'$ at the row index). That matrix is not the Jacobian, but it has the
            same eigenvalues ($\mathrm{eig}(D_g V D_f) = \mathrm{eig}(D_g D_f V)$ for
            diagonal $D_g$, $D_f$, since $\mathrm{eig}(AB) = \mathrm{eig}(BA)$), so
            the stability statement is unaffected.
        """
        u = self.net_input(x, I)
        V = self.coupling_matrix(x)
        gprime = self.activation.derivative(u)
        fprime = self.inner.derivative(x)
        return (
            jnp.eye(x.shape[0], dtype=V.dtype) - gprime[:, None] * V * fprime[None, :]
        )


HigherOrderNetwork.__init__.__doc__ = """**Arguments:**

- `weights`: the weight tensor $w_{ij\\dots l}$ of shape $(N,)^{n+1}$, $n \\geq 1$;
    the first index is the receiving unit, the other $n$ the units whose $f(x)$
    are multiplied together.
- `activation`: the outer transfer function $g$, default [`neurodyn.logistic`][];
    a built-in one may be given by name.
- `inner`: the inner function $f$ applied to each state before the product, default
    [`neurodyn.logistic`][]; [`neurodyn.identity`][] gives polynomial units.
- `input_units`: boolean mask $(N,)$ of the units $A$ the source $I$ reaches;
    `None` means every unit.
- `output_units`: boolean mask $(N,)$ of the units $O$ that carry targets; `None`
    means every unit.
- `tau`: the time constant $\\tau > 0$.
"""
