r"""Relaxation of a network to its steady state $x^* = F(x^*)$, by any steady-state
solver (see `neurodyn._solvers`)."""

import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PyTree, Real

from ._batch import batched
from ._dynamics import forward_field
from ._models.base import AbstractNetwork
from ._results import RESULTS, error_if_any
from ._solvers.base import Relaxation
from ._validation import (
    as_patterns,
    as_start,
    check_network,
)


# The keywords every function that relaxes took before `relaxation=`; still accepted,
# with a DeprecationWarning, for one release.
DEPRECATED_KEYWORDS = (
    "solver",
    "rtol",
    "atol",
    "t_max",
    "max_steps",
    "attractors_only",
)


def _spelled(value) -> str:
    if isinstance(value, eqx.Module) and not isinstance(value, diffrax.AbstractSolver):
        return f"nd.{value!r}"
    if isinstance(value, diffrax.AbstractSolver):
        return f"diffrax.{value!r}"
    return repr(value)


def as_relaxation(
    function: str,
    relaxation: Relaxation | None,
    deprecated: dict,
    defaults: dict | None = None,
) -> Relaxation:
    """The [`neurodyn.Relaxation`][] a public function `function` was given:
    `relaxation`, or its default `Relaxation(**defaults)` if None.

    `deprecated` holds the keyword arguments the function received besides its own:
    the old spelling of the settings (`solver=`, `rtol=`, ...). They still work, with
    a `DeprecationWarning` that says what to write instead; any other keyword is a
    `TypeError`, as Python would raise it."""
    defaults = {} if defaults is None else defaults
    unknown = [k for k in deprecated if k not in DEPRECATED_KEYWORDS]
    if unknown:
        raise TypeError(
            f"{function}() got an unexpected keyword argument {unknown[0]!r}."
        )
    if relaxation is not None and not isinstance(relaxation, Relaxation):
        raise TypeError(
            "`relaxation` must be a `nd.Relaxation(...)`, e.g. "
            f"`nd.Relaxation(nd.Anderson(), rtol=1e-8)`, got {relaxation!r}."
        )
    if not deprecated:
        return Relaxation(**defaults) if relaxation is None else relaxation
    if relaxation is not None:
        raise ValueError(
            f"{function}() takes its settings in `relaxation=`: give "
            f"{', '.join(f'`{k}`' for k in deprecated)} inside the "
            "`nd.Relaxation(...)`, not beside it."
        )
    merged = {**defaults, **deprecated}
    settings = {k: merged[k] for k in DEPRECATED_KEYWORDS if k in merged}
    old = ", ".join(
        f"{k}={_spelled(deprecated[k])}" for k in DEPRECATED_KEYWORDS if k in deprecated
    )
    new = ", ".join(f"{k}={_spelled(v)}" for k, v in settings.items())
    relaxation = Relaxation(**settings)  # refuses bad settings before warning
    warnings.warn(
        f"{function}({old}) is deprecated; write "
        f"{function}(relaxation=nd.Relaxation({new})). The separate keywords will "
        "be removed in the next release.",
        DeprecationWarning,
        stacklevel=3,
    )
    return relaxation


class FixedPoint(eqx.Module):
    r"""The outcome of [`neurodyn.relax`][]: a steady state $x^* = F(x^*)$ and how it
    was reached. Fields carry a leading pattern axis when a batch was relaxed.

    - `x`: the final state $x^*$.
    - `result`: a [`neurodyn.RESULTS`][] (`successful` when the dynamics settled on
        a fixed point they hold; `unstable` when it settled on one they cannot).
    - `t`: the time at which the relaxation stopped (for an iteration, the
        pseudo-time: iterations times its step $a\tau$).
    - `num_steps`: accepted plus rejected ODE solver steps, or iterations (both
        solvers' when a [`neurodyn.Fallback`][] needed more than one).
    - `residual`: $\|F(x) - x\|_\infty$, how far `x` is from solving the fixed-point
      equation (eq 10).
    """

    x: Float[Array, "*p n"]
    result: RESULTS
    t: Real[Array, "*p"]
    num_steps: Int[Array, "*p"]
    residual: Float[Array, "*p"]

    @property
    def converged(self) -> jax.Array:
        """True where the relaxation settled to a steady state that passed the
        stability certificate (or was not asked to)."""
        return self.result == RESULTS.successful


def relax_patterns(
    model: AbstractNetwork,
    I: PyTree,
    x0: Float[Array, "*p n"],
    relaxation: Relaxation,
) -> FixedPoint:
    """Relax one pattern `(N,)` or a batch `(P, N)`, a `vmap` over the patterns (a
    fallback decides for the whole batch). Differentiable by backpropagation
    through the solver only for the ODE relaxation."""

    def one(x0, i):
        out = relaxation.solve(lambda x_: forward_field(model, x_, i), x0, model.tau)
        residual = jnp.max(jnp.abs(model.drive(out.y, i) - out.y))
        return FixedPoint(out.y, out.result, out.t, out.num_steps, residual)

    return batched(one, x0, I)


def initial_state(
    model: AbstractNetwork,
    I: Float[Array, "*p n"],
    x0: ArrayLike | None,
) -> Float[Array, "*p n"]:
    """The start state: Pineda's re-initialisation $x_i(t_0) = 0.5$ unless given."""
    if x0 is None:
        return jnp.full(I.shape, 0.5, dtype=I.dtype)
    x0 = as_patterns("x0", x0, model.n_units).astype(I.dtype)
    return jnp.broadcast_to(x0, I.shape)


@eqx.filter_jit
def _relax(model, I, x0, relaxation):
    return relax_patterns(model, I, x0, relaxation)


def relax(
    model: AbstractNetwork,
    I: ArrayLike,
    *,
    x0: ArrayLike | None = None,
    relaxation: Relaxation | None = None,
    throw: bool = False,
    **deprecated,
) -> FixedPoint:
    r"""Relax $\tau\, dx/dt = -x + F(x; \theta, I)$ to its steady state $x^*$.

    **Arguments:**

    - `model`: any network, e.g. [`neurodyn.FirstOrderNetwork`][].
    - `I`: the source, one pattern $(N,)$ or a batch $(P, N)$.

    **Other arguments:**

    - `x0`: start state, $(N,)$ or $(P, N)$; default $0.5$ on every unit (Pineda's
        re-initialisation for every pattern).
    - `relaxation`: how the steady state is found, a [`neurodyn.Relaxation`][]
        (solver, tolerances, budget); default `nd.Relaxation()`.
    - `throw`: raise if any pattern did not settle (under `vmap`, one failure raises
        for the whole batch). Default False: the failure is returned in `result`
        and `converged`, as the outcome is what `relax` is for (docs/settings.md).
    - `**deprecated`: the old spelling `solver=`, `rtol=`, `atol=`, `t_max=`,
        `max_steps=`, `attractors_only=`; it still works for one release, with a
        `DeprecationWarning` saying what to write instead.

    **Returns:**

    A [`neurodyn.FixedPoint`][] with `x`, `converged`, `result`, `t`, `num_steps` and
    `residual`; a relaxation that oscillates, diverges, runs out of time or settles
    on an unstable fixed point comes back with `converged=False`.
    """
    check_network(model)
    relaxation = as_relaxation("relax", relaxation, deprecated)
    I = as_patterns("I", I, model.n_units)
    x0 = as_start(x0, I)
    fp = _relax(model, I, initial_state(model, I, x0), relaxation)
    if throw:
        fp = check_converged(fp, fp)
    return fp


def check_converged(fp: FixedPoint, token: PyTree) -> PyTree:
    """`token`, raising the first failed pattern's message at run time if any pattern
    of `fp` did not settle (its [`neurodyn.RESULTS`][] message: for an unstable
    fixed point, that it is unstable and what to try)."""
    return error_if_any(token, fp.result, ~fp.converged)
