"""What every way of integrating the analog learning system provides."""

import abc

import equinox as eqx
from jaxtyping import Array, Float, Int, PyTree


class Segment(eqx.Module):
    """The analog learning system integrated over one stretch of time.

    - `x`, `z`: $(K, P, N)$ activity and error signal at the `K` save times.
    - `params`: the parameters at the save times (leading `K` axis).
    - `stats`: solver work (`num_steps`, `num_accepted_steps`,
        `num_rejected_steps`).
    - `error_estimate`: the method's own estimate of the relative error of the
        weights it adds (see each method).
    """

    x: Float[Array, "k p n"]
    z: Float[Array, "k p n"]
    params: PyTree
    stats: dict[str, Int[Array, ""]]
    error_estimate: Float[Array, ""]


class AbstractAnalogMethod(eqx.Module):
    """How the analog learning system $(x_a, z_a, \\theta)$ is integrated: the
    full system ([`neurodyn.FullSystem`][]) or along the slow manifold
    ([`neurodyn.SlowManifold`][])."""

    @abc.abstractmethod
    def integrate(
        self,
        params: PyTree,
        static: PyTree,
        x0: Float[Array, "p n"],
        I: Float[Array, "p n"],
        T: Float[Array, "p n"],
        eta: Float[Array, ""],
        ts: Float[Array, " k"],
        rtol: float,
        atol: float,
        max_steps: int,
    ) -> Segment:
        """Integrate from `x0`, $z = 0$ and `params` at `ts[0]`, saving at every
        time of `ts` (concrete, increasing)."""
