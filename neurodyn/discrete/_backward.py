r"""Backward tuning (eqs 2-5): the Lagrange multipliers $\epsilon_{nt}$ by a backward
recursion, optionally through the guard profile against explosion and extinction."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validation import as_count, as_float_array, as_number, check_finite
from ._criteria import AbstractCriterion
from ._network import DiscreteNetwork, Trajectory, simulate


class AbstractGuard(eqx.Module):
    """The function $g$ applied to the back-propagated sum in eq 4."""

    @abc.abstractmethod
    def __call__(
        self, u: Float[Array, "..."], scale: Float[Array, ""]
    ) -> Float[Array, "..."]:
        """$g(u)$ for the output-error magnitude `scale` ($\\bar\\rho'$)."""


class Unguarded(AbstractGuard):
    """$g(u) = u$: eq 3, exactly the gradient of the criterion (BPTT)."""

    def __call__(self, u, scale):
        del scale
        return u


class GuardProfile(AbstractGuard):
    r"""The guard profile of eq 5, odd, identity between $2\nu$ and $\omega - \alpha$,
    continuously differentiable:

    $$g(u) = \mathrm{sg}(u)\begin{cases}
    \nu + u^2/(4\nu) & |u| \le 2\nu \\
    |u| & 2\nu \le |u| \le \omega - \alpha \\
    \omega - \alpha\, e^{-(|u| - \omega)/\alpha - 1} & \omega - \alpha \le |u|
    \end{cases}$$

    raising vanishing values to at least $\nu$ and saturating huge ones at $\omega$,
    with $\nu = $ `low` $\bar\rho'$, $\omega = $ `high` $\bar\rho'$,
    $\alpha = $ `softness` $\omega$, and $\bar\rho'$ the mean magnitude of the non-zero
    output errors (the paper's $10^{-6}$, $10^{6}$, $10^{-3}$ by default)."""

    low: float = eqx.field(default=1e-6, static=True)
    high: float = eqx.field(default=1e6, static=True)
    softness: float = eqx.field(default=1e-3, static=True)

    def __check_init__(self):
        as_number("low", self.low)
        as_number("high", self.high)
        if not 0 <= as_number("softness", self.softness, strict=False) < 1:
            raise ValueError(f"`softness` must be in [0, 1), got {self.softness}.")
        if not 2 * self.low < self.high * (1 - self.softness):
            raise ValueError(
                "`high` must exceed 2 `low` / (1 - `softness`) for the guard profile, "
                f"got low={self.low}, high={self.high}, softness={self.softness}."
            )

    def __call__(self, u, scale):
        scale = jnp.maximum(scale, jnp.finfo(u.dtype).tiny / self.low)
        nu, omega = self.low * scale, self.high * scale
        alpha = self.softness * omega
        a = jnp.abs(u)
        small = nu + a**2 / (4 * nu)
        large = omega - alpha * jnp.exp(jnp.minimum((omega - a) / alpha - 1.0, 0.0))
        g = jnp.where(a <= 2 * nu, small, jnp.where(a <= omega - alpha, a, large))
        return jnp.sign(u) * g


def _backward_one(net, inputs, traj, rho_prime, guard, scale):
    zero = jnp.zeros_like(traj.x[:1])
    x_prev = jnp.concatenate([zero, traj.x[:-1]])
    z_next = jnp.concatenate([traj.z[1:], zero])
    W = jnp.where(net.connectivity, net.weights, 0.0)

    def learnware(x, i):
        return W @ net.unit.features(x, i)

    def body(carry, slices):
        eps_x_next, eps_z_next = carry
        x, xp, z, zn, i, r = slices
        # sum_{nt} beta^{n't'}_{nt} eps_{nt} over the nodes at t+1 fed by x(t)
        _, via_z = jax.vjp(lambda v: learnware(v, i), x)
        _, via_x = jax.vjp(lambda v: net.unit.firmware(zn, v), x)
        u = via_z(eps_z_next)[0] + via_x(eps_x_next)[0]
        eps_x = r + guard(u, scale)
        _, via_fw = jax.vjp(lambda v: net.unit.firmware(v, xp), z)
        eps_z = guard(via_fw(eps_x)[0], scale)
        return (eps_x, eps_z), (eps_x, eps_z)

    init = (jnp.zeros_like(traj.x[0]), jnp.zeros_like(traj.x[0]))
    slices = (traj.x, x_prev, traj.z, z_next, inputs, rho_prime)
    _, (eps_x, eps_z) = jax.lax.scan(body, init, slices, reverse=True)
    return eps_x, eps_z


def backward_tuning(
    net: DiscreteNetwork,
    inputs: Float[Array, "*s t m"],
    traj: Trajectory,
    rho_prime: Float[Array, "*s t n"],
    *,
    guard: AbstractGuard = Unguarded(),
) -> tuple[Float[Array, "*s t n"], Float[Array, "*s t n"]]:
    r"""The backward recursion of eq 3 (eq 4 with a guard), from $t = T-1$ down to 0:

    $$\epsilon_{n't'} = \rho'_{n't'} + g\Big(\sum_{nt} \beta^{n't'}_{nt}\,
    \epsilon_{nt}\Big), \qquad \beta^{n't'}_{nt} = \partial_{x_{n'}(t')}\tilde x_n(t),$$

    over the two nodes of each unit: the firmware $x_n(t)$ (fed by $z(t)$ and
    $x(t-1)$) and the learnware $z_n(t) = \sum_d W_{nd}\phi_d(t)$ (fed by $x(t-1)$).
    The products $\beta^\top\epsilon$ are vector-Jacobian products of the unit's
    kernels. With `Unguarded()` this is reverse-mode differentiation through time,
    and $\partial_{W_{nd}}\mathcal L = \sum_t \phi_{d}(t)\,\epsilon^z_{nt}$.

    **Arguments:**

    - `net`, `inputs`: the network and its inputs `(T, M)` or `(S, T, M)`.
    - `traj`: `simulate(net, inputs)`.
    - `rho_prime`: $\rho'_{nt} = \partial_{x_n(t)}\rho$, shaped like `traj.x`.
    - `guard`: `Unguarded()` (eq 3) or `GuardProfile()` (eqs 4-5).

    **Returns:** `(eps_x, eps_z)`, the multipliers of the firmware and learnware nodes.
    """
    nonzero = rho_prime != 0
    scale = jnp.sum(jnp.abs(rho_prime)) / jnp.maximum(jnp.sum(nonzero), 1)

    def one(i, tr, r):
        return _backward_one(net, i, tr, r, guard, scale)

    if inputs.ndim == 3:
        return jax.vmap(one)(inputs, traj, rho_prime)
    return one(inputs, traj, rho_prime)


def weight_gradient(
    net: DiscreteNetwork, traj: Trajectory, eps_z: Float[Array, "*s t n"]
) -> Float[Array, "n d"]:
    r"""$\partial_{W_{nd}}\mathcal L = \sum_t \phi_d(t)\,\epsilon^z_{nt}$ (the Hebbian
    product of section 3), summed over sequences, zero for absent connections."""
    phi = traj.phi.reshape(-1, traj.phi.shape[-1])
    grad = eps_z.reshape(-1, eps_z.shape[-1]).T @ phi
    return jnp.where(net.connectivity, grad, 0.0)


class Tuning(eqx.Module):
    """One forward simulation and backward tuning at the current weights."""

    value: Float[Array, ""]
    reference: Float[Array, "*s t k"]
    traj: Trajectory
    eps_x: Float[Array, "*s t n"]
    eps_z: Float[Array, "*s t n"]
    gradient: Float[Array, "n d"]


def observed(x: Float[Array, "*s t n"], n_outputs: int) -> Float[Array, "*s t k"]:
    """The output nodes $o_n(t) = x_n(t)$, $n < N_0$."""
    x = as_float_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"`x` must be states (T, N) or (S, T, N), got {x.shape}.")
    check_finite("x", x)
    if as_count("n_outputs", n_outputs) > x.shape[-1]:
        raise ValueError(
            f"`n_outputs` must be at most the {x.shape[-1]} units, got {n_outputs}."
        )
    return x[..., :n_outputs]


def tune(
    net: DiscreteNetwork,
    inputs: Float[Array, "*s t m"],
    targets: Float[Array, "*s t k"],
    gains: Float[Array, "*s t k"],
    *,
    criterion: AbstractCriterion,
    guard: AbstractGuard = Unguarded(),
) -> Tuning:
    """Step 1 of the adjustment: forward simulation, the criterion's reference at the
    current outputs, $\rho'$ by differentiating the criterion with respect to the
    states (reference fixed), backward tuning and the weight gradient."""
    traj = simulate(net, inputs)
    k = targets.shape[-1]
    reference = criterion.reference(observed(traj.x, k), targets)

    def rho(x):
        return criterion(observed(x, k), targets, gains, reference)

    value, rho_prime = jax.value_and_grad(rho)(traj.x)
    eps_x, eps_z = backward_tuning(net, inputs, traj, rho_prime, guard=guard)
    gradient = weight_gradient(net, traj, eps_z)
    return Tuning(value, reference, traj, eps_x, eps_z, gradient)
