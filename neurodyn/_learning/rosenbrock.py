r"""A linearly implicit (Rosenbrock-W) diffrax solver: ROS2 of Verwer, Spee, Blom
and Hundsdorfer (1999), with its embedded first-order solution.

For $\dot y = f(t, y)$ and any matrix $J$ (ideally $\approx \partial f/\partial y$),
one step of size $h$ from $y_n$ is

$$(1 - \gamma h J)\,k_1 = f(t_n, y_n),\qquad
  (1 - \gamma h J)\,k_2 = f(t_n + h,\, y_n + h k_1) - 2 k_1,$$

$$y_{n+1} = y_n + \tfrac32 h k_1 + \tfrac12 h k_2,\qquad
  \gamma = 1 + 1/\sqrt2 .$$

It is of order 2 whatever $J$ (a W-method: $J = 0$ gives Heun's method), and
L-stable when $J$ is the exact Jacobian. The error estimate is the difference from
the linearly implicit Euler solution $y_n + h k_1$: $\tfrac12 h (k_1 + k_2)$, of
local order 2. $J$ enters only through the solves with $1 - \gamma h J$, which the
term provides (`LinearisedTerm`), so a problem with structure (low rank, a block
that is not stiff) solves them its own way.
"""

import math
from collections.abc import Callable
from typing import ClassVar

import diffrax
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, PyTree


_GAMMA = 1 + 1 / math.sqrt(2)

# resolvent(t, y, args, c) -> solve, with solve(b, guess) -> (k, ok): k solves
# (1 - c J) k = b for the term's approximation J of df/dy at (t, y).
Resolvent = Callable[
    [Array, PyTree, PyTree, Array],
    Callable[[PyTree, PyTree], tuple[PyTree, Bool[Array, ""]]],
]


class LinearisedTerm(diffrax.ODETerm):
    """$\\dot y = f(t, y, \\text{args})$ (`vector_field`) together with
    `resolvent(t, y, args, c)`: a function `solve(b, guess) -> (k, ok)` that solves
    $(1 - cJ)\\,k = b$ (from the initial guess `guess`; `ok` false if it did not
    converge) for some approximation $J$ of $\\partial f/\\partial y$ at $(t, y)$."""

    resolvent: Resolvent


def _axpy(*pairs):
    """$\\sum_i c_i y_i$ over pytrees $y_i$, each coefficient cast to the leaf."""

    def combine(*leaves):
        return sum(
            jnp.asarray(c, leaf.dtype) * leaf for (c, _), leaf in zip(pairs, leaves)
        )

    return jax.tree.map(combine, *(tree for _, tree in pairs))


def _linearised(terms) -> LinearisedTerm:
    """The `LinearisedTerm` inside diffrax's wrapper (which integrates forward in
    time only here: a backward run would need the resolvent of $-J$)."""
    while not isinstance(terms, LinearisedTerm):
        terms = terms.term
    return terms


class Ros2(diffrax.AbstractAdaptiveSolver):
    """ROS2, a two-stage Rosenbrock-W method of order 2 (module docstring) for a
    `LinearisedTerm`. Each step solves two linear systems with the same operator
    $1 - \\gamma h J$; the first starts from the previous step's $k_1$, the second
    from $-k_1$ ($k_2 = -k_1 + O(h)$). A step whose solves did not converge is
    rejected (infinite error estimate), so the controller shortens it, which also
    makes $1 - \\gamma h J$ better conditioned. Linear interpolation between steps:
    save at step ends (`diffrax.ClipStepSizeController(step_ts=...)`)."""

    term_structure: ClassVar = LinearisedTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation

    def order(self, terms):
        del terms
        return 2

    def error_order(self, terms):
        del terms
        return 2

    def init(self, terms, t0, t1, y0, args):
        del terms, t0, t1, args
        return jax.tree.map(jnp.zeros_like, y0)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del made_jump
        h = t1 - t0
        solve = _linearised(terms).resolvent(t0, y0, args, _GAMMA * h)
        k1, ok1 = solve(terms.vf(t0, y0, args), solver_state)
        f1 = terms.vf(t1, _axpy((1, y0), (h, k1)), args)
        k2, ok2 = solve(
            _axpy((1, f1), (-2, k1)),
            _axpy(
                (-1, k1),
            ),
        )
        y1 = _axpy((1, y0), (1.5 * h, k1), (0.5 * h, k2))
        error = _axpy((0.5 * h, k1), (0.5 * h, k2))
        error = jax.tree.map(lambda e: jnp.where(ok1 & ok2, e, jnp.inf), error)
        return y1, error, dict(y0=y0, y1=y1), k1, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
