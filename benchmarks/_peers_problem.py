"""The problem of `benchmarks/peers.py`: the network, its two regimes, the float64
reference gradient and the check that each regime is what it claims."""

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


REGIMES = ("contracting", "skew")
X0 = 0.5  # every relaxation starts at x = 0.5 (Pineda's re-initialisation)


# ----------------------------------------------------------------------------------
# The problem


@dataclass(frozen=True)
class Problem:
    """One regime and size, in float64 (NumPy); cast per dtype."""

    regime: str
    weights: np.ndarray
    sources: np.ndarray
    targets: np.ndarray

    @property
    def n(self) -> int:
        return self.weights.shape[0]

    def arrays(self, dtype: str) -> tuple[jax.Array, jax.Array, jax.Array]:
        return tuple(
            jnp.asarray(a, dtype=dtype)
            for a in (self.weights, self.sources, self.targets)
        )


def make_problem(regime: str, n: int, p: int, seed: int) -> Problem:
    rng = np.random.default_rng([seed, REGIMES.index(regime), n])
    A = rng.standard_normal((n, n))
    if regime == "contracting":
        weights = 0.5 * A / np.sqrt(n)
    else:
        weights = 3.0 * (A - A.T) / np.sqrt(n)
    sources = rng.uniform(-1.0, 1.0, (p, n))
    targets = rng.uniform(0.1, 0.9, (p, n))
    return Problem(regime, weights, sources, targets)


def drive(W, x, i):
    """$F(x) = g(Wx) + I$ for one pattern."""
    return jax.nn.sigmoid(W @ x) + i


def rms(v, axis=-1):
    return jnp.sqrt(jnp.mean(v**2, axis=axis))


# ----------------------------------------------------------------------------------
# The float64 reference


@dataclass(frozen=True)
class Reference:
    x: np.ndarray
    loss: float
    grad: np.ndarray
    iterations: int
    residual: float
    damping: float
    rms_x: float


@jax.jit
def _spectral_norm(W):
    def step(_, v):
        v = W.T @ (W @ v)
        return v / jnp.linalg.norm(v)

    v = jax.lax.fori_loop(0, 100, step, jnp.ones(W.shape[0], W.dtype))
    return jnp.linalg.norm(W @ v)


@functools.partial(jax.jit, static_argnames="max_iterations")
def _reference(W, I, T, damping, max_iterations=20_000):
    def F(X):
        return jax.nn.sigmoid(X @ W.T) + I

    def cond(carry):
        _, k, r = carry
        return (r > 1e-13) & (k < max_iterations)

    def body(carry):
        X, k, _ = carry
        R = F(X) - X
        return X + damping * R, k + 1, jnp.max(rms(R))

    X, k, _ = jax.lax.while_loop(
        cond, body, (jnp.full_like(I, X0), jnp.array(0), jnp.array(jnp.inf, W.dtype))
    )
    s = jax.nn.sigmoid(X @ W.T)
    slope = s * (1 - s)
    eye = jnp.eye(W.shape[0], dtype=W.dtype)

    def adjoint(args):
        g, j = args
        return jnp.linalg.solve((eye - g[:, None] * W).T, j)

    Z = jax.lax.map(adjoint, (slope, X - T))
    E = 0.5 * jnp.sum((T - X) ** 2)
    return X, E, (slope * Z).T @ X, k, jnp.max(rms(F(X) - X))


def reference(problem: Problem) -> Reference:
    W, I, T = problem.arrays("float64")
    rho = 0.25 * float(_spectral_norm(W)) * 1.05
    damping = min(1.0, 1.0 / (1.0 + rho**2))
    X, E, G, k, residual = _reference(W, I, T, damping)
    return Reference(
        np.asarray(X),
        float(E),
        np.asarray(G),
        int(k),
        float(residual),
        damping,
        float(jnp.mean(rms(X))),
    )


@dataclass(frozen=True)
class RegimeCheck:
    regime: str
    n: int
    max_real_jacobian: float
    min_real_jacobian: float
    max_abs: float
    frac_above_one: float
    plain_residual: float
    reference_residual: float
    reference_iterations: int
    damping: float
    rms_x: float


@functools.partial(jax.jit, static_argnames="iterations")
def _plain_residual(W, I, iterations=500):
    X = jax.lax.fori_loop(
        0, iterations, lambda _, X: jax.nn.sigmoid(X @ W.T) + I, jnp.full_like(I, X0)
    )
    return jnp.max(rms(jax.nn.sigmoid(X @ W.T) + I - X))


def regime_check(problem: Problem, ref: Reference) -> RegimeCheck:
    """Eigenvalues of $GW$ at pattern 0's reference fixed point, and whether 500
    plain iterations converge (float64)."""
    W = problem.weights
    s = 1.0 / (1.0 + np.exp(-(W @ ref.x[0])))
    eig = np.linalg.eigvals((s * (1 - s))[:, None] * W)
    jacobian = eig - 1.0
    W64, I64, _ = problem.arrays("float64")
    return RegimeCheck(
        problem.regime,
        problem.n,
        float(jacobian.real.max()),
        float(jacobian.real.min()),
        float(np.abs(eig).max()),
        float(np.mean(np.abs(eig) > 1)),
        float(_plain_residual(W64, I64)),
        ref.residual,
        ref.iterations,
        ref.damping,
        ref.rms_x,
    )
