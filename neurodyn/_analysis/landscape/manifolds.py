"""The saddles' unstable manifolds: trajectories leaving each saddle along its
unstable directions."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, PyTree

from ..._models.base import AbstractNetwork
from ..._solvers.base import ANALYSIS_ATOL, ANALYSIS_RTOL, MAX_STEPS
from ..._trajectory import _integrate
from ..._validation import as_count, as_number, check_network
from .checks import _source
from .results import Landscape, UnstableManifolds


@eqx.filter_jit
def _integrate_branches(model, I, x0, ts):
    field = lambda x: model.vector_field(x, I)  # noqa: E731
    return jax.vmap(
        lambda y0: _integrate(
            field, y0, ts, diffrax.Tsit5(), ANALYSIS_RTOL, ANALYSIS_ATOL, MAX_STEPS
        )
    )(x0)


def unstable_manifolds(
    model: AbstractNetwork,
    I: ArrayLike | PyTree,
    landscape: Landscape,
    *,
    eps: float = 1e-3,
    t1: float = 50.0,
    num_times: int = 200,
) -> UnstableManifolds:
    r"""The unstable manifolds of the saddles of `landscape`, integrated by diffrax
    (Tsit5) from $x_s \pm$ `eps` $v$ for every vector $v$ of the saddle's unstable
    basis ([`neurodyn.Landscape.unstable_directions`][]) over $[0,$ `t1`$]$ at
    `num_times` times. Each branch ends on what the saddle's unstable manifold
    leads to, usually an attractor; together they join the attractors that share a
    basin boundary (the saddle's stable manifold)."""
    check_network(model)
    I = _source(model, I)
    if not isinstance(landscape, Landscape):
        raise TypeError(
            "`landscape` must be a `nd.Landscape` from `nd.find_fixed_points`, got "
            f"{type(landscape).__name__}."
        )
    eps = as_number("eps", eps)
    t1 = as_number("t1", t1)
    num_times = as_count("num_times", num_times, minimum=2)
    saddles, starts = [], []
    x = np.asarray(landscape.x)
    for s in np.flatnonzero(landscape.saddles):
        basis = np.asarray(landscape.unstable_directions(int(s)))
        for v in basis.T:
            for sign in (1.0, -1.0):
                saddles.append(int(s))
                starts.append(x[s] + sign * eps * v)
    ts = jnp.linspace(0.0, t1, num_times, dtype=landscape.x.dtype)
    if not starts:
        n = model.n_units
        return UnstableManifolds(
            jnp.zeros(0, int), ts, jnp.zeros((0, num_times, n), ts.dtype)
        )
    branches = _integrate_branches(model, I, jnp.asarray(np.stack(starts)), ts)
    return UnstableManifolds(jnp.asarray(saddles), ts, branches)
