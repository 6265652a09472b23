"""The interfaces of the network families: a drive $F(x; \\theta, I)$, and the
closed-form backward and weight dynamics where Pineda writes them out."""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree


class AbstractNetwork(eqx.Module):
    r"""A recurrent network whose activity obeys $\tau\, dx/dt = -x + F(x; \theta, I)$.

    A model holds its parameters $\theta$ and defines the drive $F$; it never solves
    anything. Relaxation ([`neurodyn.relax`][]), every gradient method, learning and
    analysis work from `drive` alone: the adjoint dynamics are built from a `jax.vjp`
    of it.

    Float arrays among the fields are the trainable parameters; boolean arrays are
    masks and get no gradient.
    """

    tau: eqx.AbstractVar[float]
    output_units: eqx.AbstractVar[Bool[Array, " n"]]

    @abc.abstractmethod
    def drive(self, x: Float[Array, " n"], I: Float[Array, " n"]) -> Float[Array, " n"]:
        """$F(x; \\theta, I)$, the right-hand side of $\\tau\\, dx/dt = -x + F(x)$."""

    @property
    def n_units(self) -> int:
        return self.output_units.shape[0]

    def vector_field(
        self,
        x: Float[Array, " n"],
        I: PyTree,
    ) -> Float[Array, " n"]:
        r"""$dx/dt = (-x + F(x))/\tau$ (`I`: a source or a `training_source`)."""
        return (self.drive(x, I) - x) / self.tau

    @abc.abstractmethod
    def training_source(self, I: Float[Array, " n"], T: Float[Array, " n"]) -> PyTree:
        """What drives the relaxation whose error is learned, for one pattern.

        The source `I` itself for a network that learns under its free dynamics. A
        model whose learning phase is a constrained dynamics (the master network of
        Pineda's content-addressable memory, whose visible units are clamped to the
        target) returns something built from `T` as well; its `drive` then accepts
        that.
        """

    def error(
        self, x: Float[Array, "*p n"], T: Float[Array, "*p n"]
    ) -> Float[Array, "*p n"]:
        r"""The error $J_i = (T_i - x_i)\,\delta_{iO}$ on output units (Pineda eq 7)."""
        return jnp.where(self.output_units, T - x, 0)


class AbstractClosedFormNetwork(AbstractNetwork):
    r"""A network whose backward error dynamics and learning rule are also written
    out in closed form, as in Pineda's paper. The gradient methods never use them
    (they take a `jax.vjp` of the drive); they are for readers and hardware, and
    tests hold them equal to the generic path.

    Both take the error signal $y$, a fixed point $x^*$ and the source `I` it was
    relaxed under: the pattern's `training_source(I, T)`, as given to `drive`.
    """

    @abc.abstractmethod
    def error_dynamics(
        self,
        y: Float[Array, " n"],
        x: Float[Array, " n"],
        I: PyTree,
        J: Float[Array, " n"],
    ) -> Float[Array, " n"]:
        r"""$\tau\,dy/dt$, the closed-form backward error dynamics at the fixed
        point `x` under the source `I`, for the error `J` (`error(x, T)`). Its fixed
        point $y^*$ is the error signal of `weight_dynamics`."""

    @abc.abstractmethod
    def weight_dynamics(
        self, y: Float[Array, " n"], x: Float[Array, " n"], I: PyTree
    ) -> Float[Array, " n *rest"]:
        r"""The learning rule without $\eta$: $d\,\mathrm{weights}/dt / \eta$ for
        the error signal $y^*$ at the fixed point `x` under the source `I`."""
