"""The discrete-time network of the paper's eq 1 and its forward simulation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .._validation import (
    as_count,
    as_float_array,
    as_number,
    check_finite,
    check_instance,
)
from ._units import AbstractUnit, LinearNonLinear


class Trajectory(eqx.Module):
    """A simulated sequence: states, learnware values and kernels at every time.

    A leading sequence axis is present when the inputs had one."""

    x: Float[Array, "*s t n"]
    z: Float[Array, "*s t n"]
    phi: Float[Array, "*s t d"]


class DiscreteNetwork(eqx.Module):
    r"""A recurrent network of $N$ units in the kernel form of eq 1,

    $$x_n(t) = \Phi_{n0}\Big(\textstyle\sum_d W_{nd}\,\phi_d(t),\ x(t-1)\Big),\qquad
    \phi(t) = [\kappa(x(t-1)),\ i(t-1),\ 1],$$

    with $x(t) = 0$ and $i(t) = 0$ for $t < 0$. Column $d$ of `weights` weights the
    kernel $\phi_d$: columns $0..N-1$ the (transformed) previous states, then the $M$
    inputs, then the bias $\alpha_n$. Absent connections (`connectivity` false) are
    held at zero.
    """

    weights: Float[Array, "n d"]
    connectivity: Bool[Array, "n d"]
    unit: AbstractUnit
    n_inputs: int = eqx.field(static=True)

    def __init__(
        self,
        weights: ArrayLike,
        *,
        n_inputs: int = 1,
        unit: AbstractUnit = LinearNonLinear(),
        connectivity: ArrayLike | None = None,
    ):
        as_count("n_inputs", n_inputs, minimum=0)
        weights = as_float_array("weights", weights)
        if weights.ndim != 2 or weights.shape[1] != weights.shape[0] + n_inputs + 1:
            raise ValueError(
                f"`weights` must have shape (N, N + `n_inputs` + 1) = (N, N + "
                f"{n_inputs + 1}) (states, inputs, bias), got {weights.shape}."
            )
        check_finite("weights", weights)
        if connectivity is None:
            connectivity = jnp.ones(weights.shape, dtype=bool)
        connectivity = jnp.asarray(connectivity)
        if connectivity.dtype != jnp.bool_ or connectivity.shape != weights.shape:
            raise ValueError(
                f"`connectivity` must be a boolean mask of shape {weights.shape}, got "
                f"dtype {connectivity.dtype} and shape {connectivity.shape}."
            )
        check_instance(
            "unit", unit, AbstractUnit, "a unit type such as `LinearNonLinear()`"
        )
        self.weights = jnp.where(connectivity, weights, 0.0)
        self.connectivity = connectivity
        self.unit = unit
        self.n_inputs = n_inputs

    @property
    def n_units(self) -> int:
        return self.weights.shape[0]

    def step(
        self, x_prev: Float[Array, " n"], i_prev: Float[Array, " m"]
    ) -> tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, " d"]]:
        """One time step: `(x(t), z(t), phi(t))` from `x(t-1)`, `i(t-1)`."""
        phi = self.unit.features(x_prev, i_prev)
        z = jnp.where(self.connectivity, self.weights, 0.0) @ phi
        return self.unit.firmware(z, x_prev), z, phi


def check_inputs(net: DiscreteNetwork, inputs: ArrayLike) -> Array:
    """Inputs as a float array `(T, M)` or `(S, T, M)`; a clear error otherwise."""
    check_instance("net", net, DiscreteNetwork, "an `ndd.DiscreteNetwork`")
    inputs = as_float_array("inputs", inputs)
    if inputs.ndim not in (2, 3) or inputs.shape[-1] != net.n_inputs:
        raise ValueError(
            f"`inputs` must have shape (T, {net.n_inputs}) or (S, T, {net.n_inputs}) "
            f"for a network with {net.n_inputs} inputs, got {inputs.shape}."
        )
    check_finite("inputs", inputs)
    return inputs


def check_targets(
    net: DiscreteNetwork, inputs: Array, targets: ArrayLike, gains: ArrayLike | None
) -> tuple[Array, Array]:
    """Targets `(*S, T, N0)` and gains of the same shape (ones by default)."""
    targets = as_float_array("targets", targets)
    if (
        targets.ndim != inputs.ndim
        or targets.shape[:-1] != inputs.shape[:-1]
        or not 1 <= targets.shape[-1] <= net.n_units
    ):
        raise ValueError(
            f"`targets` must have shape {inputs.shape[:-1]} + (N0,) with 1 <= N0 <= "
            f"{net.n_units} (the first N0 units are observed), got {targets.shape}."
        )
    check_finite("targets", targets)
    if gains is None:
        gains = jnp.ones_like(targets)
    gains = as_float_array("gains", gains)
    if gains.shape != targets.shape:
        raise ValueError(
            f"`gains` must have the shape of `targets` {targets.shape}, got "
            f"{gains.shape}."
        )
    check_finite("gains", gains)
    if bool(jnp.any(gains < 0)) or not bool(jnp.any(gains > 0)):
        raise ValueError("`gains` must be >= 0 with at least one positive entry.")
    return targets, gains


def check_stopping(criterion, tolerance: float, max_iterations: int) -> None:
    """The criterion and the stopping rule of an iterative fit."""
    from ._criteria import AbstractCriterion

    check_instance(
        "criterion", criterion, AbstractCriterion, "a criterion such as `L2()`"
    )
    as_number("tolerance", tolerance, strict=False)
    as_count("max_iterations", max_iterations)


def simulate(net: DiscreteNetwork, inputs: ArrayLike) -> Trajectory:
    r"""Forward simulation of eq 1 by `jax.lax.scan` over time, `vmap` over sequences.

    This is the step $\partial_{\epsilon_{nt}} \mathcal{L} = 0$ of the paper: the
    constraints $x_n(t) = \tilde x_n(t)$ hold by construction.

    **Arguments:**

    - `net`: the network.
    - `inputs`: $i(t)$, shape `(T, M)` or `(S, T, M)` for `S` sequences.

    **Returns:** a `Trajectory` with the same leading axes as `inputs`.
    """
    inputs = check_inputs(net, inputs)
    if inputs.ndim == 3:
        return jax.vmap(lambda seq: simulate(net, seq))(inputs)
    i_prev = jnp.concatenate([jnp.zeros_like(inputs[:1]), inputs[:-1]])

    def body(x_prev, i):
        x, z, phi = net.step(x_prev, i)
        return x, (x, z, phi)

    x0 = jnp.zeros(net.n_units, inputs.dtype)
    _, (x, z, phi) = jax.lax.scan(body, x0, i_prev)
    return Trajectory(x=x, z=z, phi=phi)


def random_network(
    n_units: int,
    *,
    unit: AbstractUnit = LinearNonLinear(),
    n_inputs: int = 1,
    std: float | None = None,
    density: float = 1.0,
    seed: int = 0,
) -> DiscreteNetwork:
    r"""A network with weights drawn from $\mathcal N(0, \sigma^2)$, $\sigma = 1/N$ by
    default (the paper's "$\sigma \simeq 1/N$ standard deviation"), and each
    connection present with probability `density` (bias always present)."""
    as_count("n_units", n_units)
    as_count("n_inputs", n_inputs, minimum=0)
    as_count("seed", seed, minimum=0)
    if std is not None:
        as_number("std", std)
    if not as_number("density", density) <= 1.0:
        raise ValueError(f"`density` must be in (0, 1], got {density}.")
    check_instance(
        "unit", unit, AbstractUnit, "a unit type such as `LinearNonLinear()`"
    )
    rng = np.random.default_rng(seed)
    shape = (n_units, n_units + n_inputs + 1)
    weights = rng.normal(scale=1.0 / n_units if std is None else std, size=shape)
    connectivity = rng.random(shape) < density
    connectivity[:, -1] = True
    return DiscreteNetwork(
        weights, n_inputs=n_inputs, unit=unit, connectivity=connectivity
    )
