r"""Unit types: the kernels $\Phi_{nd}$ of the paper's eq 1, as strategies.

Every unit is split, as in the paper's appendix A, into a *learnware* node, the linear
combination $z_n(t) = \sum_d W_{nd}\,\phi_d(t)$ of kernels of the previous state and
input, and a parameter-less *firmware* node $x_n(t) = \Phi_{n0}(z(t), x(t-1))$.
The kernels are $\phi(t) = [\,\kappa(x(t-1)),\ i(t-1),\ 1\,]$ where $\kappa$ is the
unit's presynaptic transform (the identity, or the spike mollifier of AIF units).
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validation import as_number


def squash(u: Float[Array, "..."], low: float, high: float) -> Float[Array, "..."]:
    r"""The paper's contracting non-linearity (appendix A), slope 1 at the centre:
    $\zeta_{[a,b]}(u) = \frac{a+b}{2} + \frac{b-a}{2}\tanh\big(\frac{2u}{b-a}\big)$."""
    half = 0.5 * (high - low)
    return 0.5 * (low + high) + half * jnp.tanh(u / half)


def spike(v: Float[Array, "..."], sharpness: float) -> Float[Array, "..."]:
    r"""The mollified threshold $\Upsilon_\epsilon(v) =
    \zeta_{[0,1]}\big((v - 1/2)/\epsilon\big)$ of AIF units (appendix A), threshold
    $1/2$."""
    return squash((v - 0.5) / sharpness, 0.0, 1.0)


class AbstractUnit(eqx.Module):
    """A unit type: presynaptic kernel and firmware of the paper's eq 1."""

    name: eqx.AbstractClassVar[str]

    @abc.abstractmethod
    def presynaptic(self, x_prev: Float[Array, " n"]) -> Float[Array, " n"]:
        """The kernel applied to the previous state before weighting."""

    @abc.abstractmethod
    def firmware(
        self, z: Float[Array, " n"], x_prev: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """$x(t)$ from the learnware values $z(t)$ and the previous state."""

    def features(
        self, x_prev: Float[Array, " n"], i_prev: Float[Array, " m"]
    ) -> Float[Array, " d"]:
        r"""$\phi(t) = [\kappa(x(t-1)),\ i(t-1),\ 1]$, $d = n + m + 1$."""
        one = jnp.ones((1,), x_prev.dtype)
        return jnp.concatenate([self.presynaptic(x_prev), i_prev, one])


class Linear(AbstractUnit):
    r"""L units: $x_n(t) = \sum_{n'} W_{nn'} x_{n'}(t-1) + \sum_m W_{nm} i_m(t-1)
    + \alpha_n$."""

    name: ClassVar[str] = "L"

    def presynaptic(self, x_prev):
        return x_prev

    def firmware(self, z, x_prev):
        del x_prev
        return z


class LinearNonLinear(AbstractUnit):
    r"""LNL units (eq 7): $x_n(t) = \gamma\,x_n(t-1) + \zeta_{[a,b]}(z_n(t))$ with
    $z_n(t) = \alpha_n + \sum_{n'} W_{nn'} x_{n'}(t-1) + \sum_m W_{nm} i_m(t-1)$ and a
    fixed leak $0 \le \gamma < 1$."""

    leak: float = eqx.field(default=0.5, static=True)
    low: float = eqx.field(default=-1.0, static=True)
    high: float = eqx.field(default=1.0, static=True)
    name: ClassVar[str] = "LNL"

    def __check_init__(self):
        if not 0.0 <= as_number("leak", self.leak, strict=False) < 1.0:
            raise ValueError(f"`leak` must be in [0, 1), got {self.leak}.")
        as_number("low", self.low, minimum=None)
        if not self.low < as_number("high", self.high, minimum=None):
            raise ValueError(f"Need `low < high`, got [{self.low}, {self.high}].")

    def presynaptic(self, x_prev):
        return x_prev

    def firmware(self, z, x_prev):
        return self.leak * x_prev + squash(z, self.low, self.high)


class IntegrateAndFire(AbstractUnit):
    r"""AIF units (BMS form, eq 10 of the text; the caption of figure 5 calls it eq 9):
    $x_n(t) = \gamma\,(1 - \Upsilon_\epsilon(x_n(t-1)))\,x_n(t-1) + \alpha_n
    + \sum_{n'} W_{nn'}\,\Upsilon_\epsilon(x_{n'}(t-1)) + \sum_m W_{nm} i_m(t-1)$:
    leaky integration, reset to 0 after a (mollified) spike above threshold 1/2."""

    leak: float = eqx.field(default=0.5, static=True)
    sharpness: float = eqx.field(default=0.25, static=True)
    name: ClassVar[str] = "AIF"

    def __check_init__(self):
        if not 0.0 <= as_number("leak", self.leak, strict=False) < 1.0:
            raise ValueError(f"`leak` must be in [0, 1), got {self.leak}.")
        as_number("sharpness", self.sharpness)

    def presynaptic(self, x_prev):
        return spike(x_prev, self.sharpness)

    def firmware(self, z, x_prev):
        return self.leak * (1.0 - spike(x_prev, self.sharpness)) * x_prev + z


class SoftMax(AbstractUnit):
    r"""Soft-max units (eq 11): $x_n(t) = e^{z_n(t)} / \sum_{n'} e^{z_{n'}(t)}$,
    $z$ as for LNL units; the firmware couples all units of the layer."""

    name: ClassVar[str] = "SoftMax"

    def presynaptic(self, x_prev):
        return x_prev

    def firmware(self, z, x_prev):
        del x_prev
        return jax.nn.softmax(z)
