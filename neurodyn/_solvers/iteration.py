r"""Fixed-point iterations: the ODE's Euler step taken as a map, plain or
accelerated.

With $G(y) = y + \tau f(y)$ (for the forward dynamics $G(x) = F(x)$, the drive) a
steady state is a fixed point $y = G(y)$. Each iteration costs one evaluation of
the field; none is spent following the transient.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validation import as_count, as_number
from .base import AbstractSteadyStateSolver, Outcome, rms, runaway
from .certificate import certify


class _Loop(eqx.Module):
    k: Array  # iterations done
    y: Array
    f: Array  # field at y
    best: Array  # smallest residual seen
    since_best: Array  # iterations since it was seen
    done: Array


def _iterate(relaxation, field, y0, tau, scale, patience, dt, step, extra):
    """Iterate `y, extra <- step(y, f, extra, k)` until the settled test passes, the
    state runs away, the residual stops improving for `patience` iterations, or the
    budget ends (`max_steps`, or `t_max` at pseudo-time `dt` per iteration). Shared
    by every iteration below."""
    max_steps = min(relaxation.max_steps, int(relaxation.horizon(tau) / dt) + 1)

    def stop(y, f):
        return relaxation.settled(f, y, scale) | runaway(y, y0)

    f0 = field(y0)
    init = (_Loop(jnp.array(0), y0, f0, rms(f0), jnp.array(0), stop(y0, f0)), extra)

    def cond(carry):
        loop, _ = carry
        return ~loop.done & (loop.k < max_steps) & (loop.since_best < patience)

    def body(carry):
        loop, extra = carry
        y, extra = step(loop.y, loop.f, extra, loop.k)
        f = field(y)
        residual = rms(f)
        better = residual < loop.best
        return (
            _Loop(
                loop.k + 1,
                y,
                f,
                jnp.where(better, residual, loop.best),
                jnp.where(better, 0, loop.since_best + 1),
                stop(y, f),
            ),
            extra,
        )

    loop, _ = jax.lax.while_loop(cond, body, init)
    result = relaxation.classify(relaxation.settled(loop.f, loop.y, scale), loop.y, y0)
    return loop.y, certify(relaxation, result, field, loop.y, tau), loop.k


class FixedPointIteration(AbstractSteadyStateSolver):
    r"""Damped fixed-point iteration $y \leftarrow y + a\,\tau f(y)$; for the forward
    dynamics $x \leftarrow x + a\,(F(x) - x)$, with $a = 1$ the plain
    $x \leftarrow F(x)$.

    This is the forward Euler method with step $a\tau$. It converges to a fixed
    point whose Jacobian eigenvalues $\lambda$ of $\tau f$ satisfy
    $|1 + a\lambda| < 1$: every stable fixed point for small enough $a$, but with
    $a = 1$ only where $F$ is contracting there. Cheapest per step; slow when
    $|1 + a\lambda|$ is close to 1.

    **Arguments:**

    - `damping`: $a \in (0, 1]$.
    - `patience`: give up (`not_converged`) after this many iterations without a
        new smallest residual.
    """

    damping: float = eqx.field(static=True, default=1.0)
    patience: int = eqx.field(static=True, default=50)

    def __check_init__(self):
        _check_damping(self.damping)
        _check_patience(self.patience)

    def ode_relaxation(self) -> None:
        """None: an iteration is not differentiated through."""
        return None

    def solve(self, relaxation, field, y0, tau, scale):
        a = self.damping * tau

        def step(y, f, extra, k):
            del k
            return y + a * f, extra

        y, result, k = _iterate(
            relaxation, field, y0, tau, scale, self.patience, a, step, None
        )
        return Outcome(y, result, (k * a).astype(y.dtype), k)


class Anderson(AbstractSteadyStateSolver):
    r"""Anderson acceleration of the damped iteration (type II, memory $m$).

    From the last $m$ iterates $y_i$ and residuals $r_i = \tau f(y_i) = G(y_i) - y_i$
    it takes the affine combination with the smallest residual,

    $$\alpha = \arg\min_{\sum_i\alpha_i = 1} \Big\|\sum_i \alpha_i r_i\Big\|^2
      \qquad y \leftarrow \sum_i \alpha_i (y_i + a\, r_i),$$

    (the constrained least squares solved through the bordered Gram system, with a
    small ridge for conditioning). On a linear problem it behaves like GMRES, so it
    converges where the plain iteration does not (a stable but non-contracting
    fixed point), in few iterations; on a nonlinear one it can stall or run away,
    which the [`neurodyn.Fallback`][] default catches.

    **Arguments:**

    - `memory`: $m$, the iterates remembered.
    - `damping`: $a \in (0, 1]$, the mixing of each residual.
    - `ridge`: the Gram matrix's regularisation, relative to its largest diagonal
        entry; default $\sqrt{\epsilon}$ of the dtype.
    - `patience`: give up (`not_converged`) after this many iterations without a
        new smallest residual.

    ??? cite "References"

        ```bibtex
        @article{walker2011anderson,
          title={Anderson acceleration for fixed-point iterations},
          author={Walker, Homer F. and Ni, Peng},
          journal={SIAM Journal on Numerical Analysis},
          volume={49}, number={4}, pages={1715--1735},
          year={2011}
        }
        ```
    """

    memory: int = eqx.field(static=True, default=5)
    damping: float = eqx.field(static=True, default=1.0)
    ridge: float | None = eqx.field(static=True, default=None)
    patience: int = eqx.field(static=True, default=25)

    def __check_init__(self):
        as_count("memory", self.memory)
        _check_damping(self.damping)
        _check_patience(self.patience)
        if self.ridge is not None and not self.ridge > 0:
            raise ValueError(f"`ridge` must be positive, got {self.ridge}.")

    def ode_relaxation(self) -> None:
        """None: an iteration is not differentiated through."""
        return None

    def solve(self, relaxation, field, y0, tau, scale):
        m = self.memory
        ridge = jnp.sqrt(jnp.finfo(y0.dtype).eps) if self.ridge is None else self.ridge
        history = (jnp.zeros((m,) + y0.shape, y0.dtype),) * 2

        def step(y, f, history, k):
            ys, rs = history
            slot = k % m
            ys, rs = ys.at[slot].set(y), rs.at[slot].set(tau * f)
            alpha = _mixing(rs, jnp.arange(m) <= k, ridge)
            return alpha @ (ys + self.damping * rs), (ys, rs)

        dt = self.damping * tau
        y, result, k = _iterate(
            relaxation, field, y0, tau, scale, self.patience, dt, step, history
        )
        return Outcome(y, result, (k * dt).astype(y.dtype), k)


def _mixing(
    rs: Float[Array, "m n"], filled: Array, ridge: Array | float
) -> Float[Array, " m"]:
    r"""$\alpha$ minimising $\|\sum_i \alpha_i r_i\|$ subject to $\sum_i\alpha_i = 1$
    over the filled slots (zero on the others), from the bordered system
    $\begin{pmatrix} H & 1 \\ 1^T & 0\end{pmatrix}
     \begin{pmatrix}\alpha \\ \nu\end{pmatrix} = \begin{pmatrix}0 \\ 1\end{pmatrix}$,
    $H = R R^T + \text{ridge}$."""
    m = rs.shape[0]
    gram = rs @ rs.T
    gram = gram / jnp.maximum(jnp.max(jnp.diag(gram)), jnp.finfo(rs.dtype).tiny)
    both = filled[:, None] & filled[None, :]
    gram = jnp.where(both, gram, 0) + jnp.diag(jnp.where(filled, ridge, 1.0))
    ones = filled.astype(rs.dtype)
    system = jnp.block(
        [[gram, ones[:, None]], [ones[None, :], jnp.zeros((1, 1), rs.dtype)]]
    )
    rhs = jnp.zeros(m + 1, rs.dtype).at[m].set(1.0)
    return jnp.linalg.solve(system, rhs)[:m]


def _check_damping(damping):
    if not 0 < as_number("damping", damping) <= 1:
        raise ValueError(f"`damping` must be in (0, 1], got {damping}.")


def _check_patience(patience):
    as_count("patience", patience)
