r"""The linear systems of the fast variables on the slow manifold: $(1 - A)\,w = b$
and its transpose for every pattern, matrix-free."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from .._dynamics import relaxation_operator
from .._models.base import AbstractNetwork
from .._results import RESULTS
from .._solvers.base import Relaxation, rms
from .._solvers.fallback import Fallback
from .._solvers.iteration import Anderson, FixedPointIteration


# The linear systems' chain: the plain iteration, then Anderson acceleration, which
# on a linear system spans the same Krylov space as GMRES.
LINEAR_CHAIN = Fallback(FixedPointIteration(patience=5), Anderson())


class Solves(eqx.Module):
    r"""How the slow field solves: the fixed points $x^*$ (`relaxation`, attractors
    only) and the linear systems of $z^*$ and of the $O(\epsilon)$ terms (`linear`).
    Each linear system $(1 - A)\,w = b$ (or its transpose) is solved as the steady
    state of $dw/dt = b - (1 - A)\,w$: the plain iteration $w \leftarrow A w + b$
    first, which settles in a few products when the fixed point is strongly
    attracting and checks its residual at every product, then Anderson
    acceleration."""

    relaxation: Relaxation
    linear: Relaxation


def linear_solve(
    model: AbstractNetwork,
    x: Float[Array, "p n"],
    source: PyTree,
    b: Float[Array, "p n"],
    y0: Float[Array, "p n"],
    relaxation: Relaxation,
    transpose: bool,
) -> tuple[Float[Array, "p n"], Bool[Array, ""]]:
    r"""Solve $(1 - A_a)\,w_a = b_a$ (`transpose`: $(1 - A_a^T)\,w_a = b_a$) for
    every pattern $a$, from `y0`, as the steady state of $dw/dt = b - (1 - A)\,w$."""

    def one(x_, i, b_, w0):
        operator = relaxation_operator(model, x_, i, transpose=transpose)
        return relaxation.solve(lambda w: b_ - operator.mv(w), w0, 1.0, scale=rms(b_))

    out = jax.vmap(one)(x, source, b, y0)
    return out.y, jnp.all(out.result == RESULTS.successful)
