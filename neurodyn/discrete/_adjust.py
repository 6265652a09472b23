r"""Weight adjustment: the second-order per-unit step (eq 6 and footnotes 5-6), the
first-order fall-back with momentum, both with a line search, and the iteration."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._validation import as_float_array, as_number, check_finite, check_instance
from ._backward import (
    AbstractGuard,
    GuardProfile,
    observed,
    tune,
)
from ._criteria import L2, AbstractCriterion
from ._network import (
    DiscreteNetwork,
    Trajectory,
    check_inputs,
    check_stopping,
    check_targets,
    simulate,
)


# Line search: a geometric grid of step fractions, then a finer grid (ratio 2^(1/8),
# about the paper's 1e-2 relative precision) around the best coarse one.
COARSE = 2.0 ** jnp.arange(1, -41, -1)
FINE = 2.0 ** (jnp.arange(-7, 8) / 8)
# The momentum filters of the first-order fall-back.
MOMENTA = (1, 2, 4, 8, 16, 32)


class SecondOrderStep(eqx.Module):
    """The per-unit normal equations of eq 6 and their minimal-distance solution."""

    A: Float[Array, "n d d"]
    b: Float[Array, "n d"]
    delta: Float[Array, "n d"]


def second_order_step(
    net: DiscreteNetwork,
    traj: Trajectory,
    eps_z: Float[Array, "*s t n"],
    kappa: float | Float[Array, ""],
) -> SecondOrderStep:
    r"""Eq 6 for every unit $n$, with footnote 6 (i): each learnware node gets the
    target $\hat z_n(t) = \tilde z_n(t) - \epsilon^z_{nt}/\kappa$ and the gain
    $\kappa_{nt} = \kappa$, so that the local least-squares problem
    $\sum_t \frac{\kappa}{2}(W_n\cdot\phi(t) - \hat z_n(t))^2$ has the gradient
    $\sum_t \phi(t)\,\epsilon^z_{nt}$ of the criterion at $\hat W$:

    $$A_{n,dd'} = \kappa\sum_t \phi_{d}(t)\,\phi_{d'}(t), \qquad
    b_{n,d} = \kappa\sum_t \phi_{d}(t)\,\hat z_n(t) = (A_n \hat W_n)_d
    - \sum_t \phi_d(t)\,\epsilon^z_{nt},$$

    over the unit's connected kernels, solved in the minimal-distance sense
    (footnote 5): $W_n = \hat W_n + A_n^\dagger (b_n - A_n \hat W_n)$, by SVD.
    `adjust` takes $\kappa = 1/\sum_{nt}\kappa_{nt}$, the weight of one sample in the
    normalised criterion (the paper's $\kappa = 1$ for a criterion that is a sum)."""
    phi = traj.phi.reshape(-1, traj.phi.shape[-1])
    eps = eps_z.reshape(-1, eps_z.shape[-1])
    W = jnp.where(net.connectivity, net.weights, 0.0)

    def unit(args):
        w, mask, e = args
        p = jnp.where(mask[None, :], phi, 0.0)
        A = kappa * (p.T @ p)
        b = A @ w - p.T @ e
        return A, b, jnp.where(mask, pseudo_inverse(A) @ (b - A @ w), 0.0)

    A, b, delta = jax.lax.map(unit, (W, net.connectivity, eps.T))
    return SecondOrderStep(A, b, delta)


def pseudo_inverse(A: Float[Array, "d d"], rtol: float = 1e-13) -> Float[Array, "d d"]:
    r"""$A^\dagger$ of a symmetric positive semi-definite matrix from its spectral
    decomposition $A = U S U^\top$ (footnote 5), eigenvalues below
    `rtol` $\cdot \max S$ treated as zero."""
    A = as_float_array("A", A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"`A` must be a square (d, d) matrix, got {A.shape}.")
    check_finite("A", A)
    as_number("rtol", rtol, strict=False)
    s, U = jnp.linalg.eigh(A)
    keep = s > rtol * jnp.max(s)
    return (U * jnp.where(keep, 1.0 / jnp.where(keep, s, 1.0), 0.0)[None, :]) @ U.T


def line_search(loss, weights, directions):
    r"""$\min_{\alpha > 0} \mathcal L(\hat W + \alpha\,\Delta_k)$ for each direction
    $\Delta_k$: a geometric grid $\alpha = 2, 1, \dots, 2^{-40}$, refined by factors
    $2^{j/8}$ around the best (about the paper's $10^{-2}$ relative precision, in
    place of its Brent-Dekker search, so that every candidate is simulated at once);
    a non-finite criterion (a diverging simulation) counts as $+\infty$.

    **Arguments:** `loss` maps weights to the criterion; `weights` $\hat W$;
    `directions` $\Delta_k$ stacked on a leading axis.

    **Returns:** `(alpha, value)`, each with one entry per direction.
    """

    def values(alphas):  # alphas: (K, A)
        def one(direction, a):
            return jax.vmap(lambda ai: loss(weights + ai * direction))(a)

        v = jax.vmap(one)(directions, alphas)
        return jnp.where(jnp.isfinite(v), v, jnp.inf)

    coarse_alphas = jnp.broadcast_to(COARSE, (directions.shape[0], COARSE.size))
    coarse = values(coarse_alphas)
    best = COARSE[jnp.argmin(coarse, axis=1)]
    fine_alphas = best[:, None] * FINE[None, :]
    alphas = jnp.concatenate([coarse_alphas, fine_alphas], axis=1)
    v = jnp.concatenate([coarse, values(fine_alphas)], axis=1)
    index = jnp.argmin(v, axis=1)
    rows = jnp.arange(v.shape[0])
    return alphas[rows, index], v[rows, index]


class Adjustment(eqx.Module):
    """The outcome of `adjust`: the learned network and the criterion history.

    `history[k]` is the criterion before adjustment `k + 1` (NaN past the stop);
    `kinds[k]` says which step adjustment `k + 1` took: 1 second order, 2 first order,
    0 none (stopped)."""

    network: DiscreteNetwork
    history: Float[Array, " k"]
    kinds: Int[Array, " k"]
    iterations: Int[Array, ""]
    value: Float[Array, ""]
    converged: Bool[Array, ""]


class _State(eqx.Module):
    weights: Float[Array, "n d"]
    momenta: Float[Array, "6 n d"]
    steps: Float[Array, " 6"]
    history: Float[Array, " k"]
    kinds: Int[Array, " k"]
    iteration: Int[Array, ""]
    done: Bool[Array, ""]


def adjust(
    net: DiscreteNetwork,
    inputs: ArrayLike,
    targets: ArrayLike,
    gains: ArrayLike | None = None,
    *,
    criterion: AbstractCriterion = L2(),
    guard: AbstractGuard = GuardProfile(),
    tolerance: float = 1e-6,
    max_iterations: int = 101,
) -> Adjustment:
    r"""The complete weight adjustment of section 3, jit-compiled as one loop:

    1. forward simulation and backward tuning (eqs 1, 3-5) at $\hat W$;
    2. (a) the second-order step of eq 6 with a line search; (b) the first-order
       fall-back, taken if it decreases the criterion more than (a) or (a) fails
       (the paper takes (a) whenever it succeeds): gradients filtered as
       $g_k \leftarrow (1 - 1/k)\,g_k + \partial_W\mathcal L / k$,
       $k \in \{1, 2, 4, 8, 16, 32\}$, each tried along $-\upsilon_k g_k/|g_k|$ with
       a line search (best $\alpha_k$), the largest decrease kept and
       $\upsilon_k \leftarrow 2\alpha_k\upsilon_k$ for each filter that decreased
       the criterion ($\upsilon_k = 1$ initially);
    3. repeat until the criterion is below `tolerance`, neither step decreases it,
       or `max_iterations` adjustments were made.

    Reweighted criteria keep their reference fixed within an iteration (each step
    minimises a least-squares problem); the recorded value is the criterion proper.

    **Arguments:**

    - `net`: the learner, with its initial weights, unit type and connectivity.
    - `inputs`: `(T, M)` or `(S, T, M)`.
    - `targets`: desired outputs $\bar o_n(t)$ of the first $N_0$ units,
      `(T, N0)` or `(S, T, N0)`.
    - `gains`: $\kappa_{nt} \ge 0$ shaped like `targets` (0 = not observed); ones by
      default.
    - `criterion`, `guard`: strategies (see `L2`, `GuardProfile`).

    **Returns:** an `Adjustment`.

    **Raises:** `ValueError` for inputs, targets or gains of the wrong shape, with
    non-finite entries, or negative gains.
    """
    inputs = check_inputs(net, inputs)
    targets, gains = check_targets(net, inputs, targets, gains)
    check_stopping(criterion, tolerance, max_iterations)
    check_instance("guard", guard, AbstractGuard, "a guard such as `GuardProfile()`")
    return _adjust(
        net, inputs, targets, gains, criterion, guard, tolerance, max_iterations
    )


@eqx.filter_jit
def _adjust(net, inputs, targets, gains, criterion, guard, tolerance, max_iterations):
    k = targets.shape[-1]
    ks = jnp.asarray(MOMENTA, inputs.dtype)[:, None, None]

    def with_weights(w):
        return eqx.tree_at(lambda m: m.weights, net, w)

    def body(state: _State) -> _State:
        current = with_weights(state.weights)
        tuning = tune(current, inputs, targets, gains, criterion=criterion, guard=guard)

        def loss(w):
            x = simulate(with_weights(w), inputs).x
            return criterion(observed(x, k), targets, gains, tuning.reference)

        kappa = 1.0 / jnp.sum(gains)
        second = second_order_step(current, tuning.traj, tuning.eps_z, kappa)
        momenta = (1 - 1 / ks) * state.momenta + tuning.gradient[None] / ks
        norms = jnp.sqrt(jnp.sum(momenta**2, axis=(1, 2), keepdims=True))
        tiny = jnp.finfo(norms.dtype).tiny
        directions = -state.steps[:, None, None] * momenta / jnp.maximum(norms, tiny)
        alphas, values = line_search(
            loss, state.weights, jnp.concatenate([second.delta[None], directions])
        )
        alpha2, value2 = alphas[0], values[0]
        alpha1, value1 = alphas[1:], values[1:]
        best = jnp.argmin(value1)

        use_second = (value2 < tuning.value) & (value2 <= value1[best])
        use_first = jnp.invert(use_second) & (value1[best] < tuning.value)
        weights = jnp.where(
            use_second,
            state.weights + alpha2 * second.delta,
            jnp.where(
                use_first,
                state.weights + alpha1[best] * directions[best],
                state.weights,
            ),
        )
        reached = tuning.value < tolerance
        last = state.iteration >= max_iterations
        stalled = jnp.invert(use_second | use_first)
        done = reached | last | stalled
        kind = jnp.where(done, 0, jnp.where(use_second, 1, 2))
        return _State(
            weights=jnp.where(done, state.weights, weights),
            momenta=momenta,
            steps=jnp.where(value1 < tuning.value, 2 * alpha1, 1.0) * state.steps,
            history=state.history.at[state.iteration].set(tuning.value),
            kinds=state.kinds.at[state.iteration].set(kind),
            iteration=jnp.where(done, state.iteration, state.iteration + 1),
            done=done,
        )

    dtype = inputs.dtype
    init = _State(
        weights=jnp.where(net.connectivity, net.weights, 0.0),
        momenta=jnp.zeros((len(MOMENTA), *net.weights.shape), dtype),
        steps=jnp.ones(len(MOMENTA), dtype),
        history=jnp.full(max_iterations + 1, jnp.nan, dtype),
        kinds=jnp.zeros(max_iterations + 1, jnp.int32),
        iteration=jnp.asarray(0),
        done=jnp.asarray(False),
    )
    final = jax.lax.while_loop(lambda s: jnp.invert(s.done), body, init)
    value = final.history[final.iteration]
    return Adjustment(
        network=with_weights(final.weights),
        history=final.history,
        kinds=final.kinds,
        iterations=final.iteration,
        value=value,
        converged=value < tolerance,
    )
