r"""Naumov's matrix forms of backpropagation and of the weight Hessian, for
feed-forward layers and for a recurrent layer unrolled in time (BPTT).

Feed-forward: $y^{(k)} = W^{(k)} z^{(k-1)} + b^{(k)}$, $z^{(k)} = f(y^{(k)})$,
$z^{(0)} = x$, $E = \tfrac12\|z^* - z^{(l)}\|^2$. With
$v^{(k)} = \partial E/\partial y^{(k)}$ and
$A^{(k)} = \partial^2 E/\partial y^{(k)2}$,

$$G_W^{(k)} = v^{(k)} z^{(k-1)T}\ \text{(rank 1)},\qquad
  H_W^{(k)} = A^{(k)} \otimes z^{(k-1)} z^{(k-1)T},$$

$$v^{(l)} = (z^{(l)} - z^*) \circ f'(y^{(l)}),\quad
  v^{(k-1)} = (W^{(k)T} v^{(k)}) \circ f'(y^{(k-1)}),$$

$$A^{(l)} = \mathrm{diag}\big(f'^2 + (z^{(l)} - z^*) \circ f''\big)(y^{(l)}),\quad
  A^{(k-1)} = C^{(k-1)} \circ F^{(k-1)} + D^{(k-1)},$$

with $C^{(k-1)} = W^{(k)T} A^{(k)} W^{(k)}$, $F = f' f'^T$ and
$D^{(k-1)} = \mathrm{diag}\big((W^{(k)T} v^{(k)}) \circ f''(y^{(k-1)})\big)$ (Naumov's
Theorem 1; note that $D$ carries the gradient vector $v$ built with $f'$, which the
printed recursion for it obscures). Since $z z^T$ has rank one,

$$\lambda\big(H_W^{(k)}\big) = \{0\ (\text{multiplicity } (n-1)m),\
  \|z^{(k-1)}\|^2 \lambda_i(A^{(k)})\}.$$

Recurrent layer unrolled for $t$ steps: $y^{(s)} = W x^{(s)} + U z^{(s-1)} + b$,
$z^{(0)} = 0$, $E = \tfrac12\|z^* - z^{(t)}\|^2$. With
$P_{h\leftarrow s} = \partial y^{(h)}/\partial y^{(s)} =
U\,\mathrm{diag} f'(y^{(h-1)}) \cdots U\,\mathrm{diag} f'(y^{(s)})$ and
$\tilde v^{(s)} = P_{t\leftarrow s}^T v^{(t)}$,

$$G_W = \sum_{s=1}^t \tilde v^{(s)} x^{(s)T}\ \text{(rank } t),\qquad
  H_W = \sum_{s,\zeta=1}^{t} M^{(s,\zeta)} \otimes x^{(s)} x^{(\zeta)T},$$

$$M^{(s,\zeta)} = P_{t\leftarrow s}^T\, \mathrm{diag} f'(y^{(t)})^2\,
  P_{t\leftarrow\zeta} + \sum_{h=\max(s,\zeta)}^{t} P_{h\leftarrow s}^T\,
  \mathrm{diag}\big(\bar z^{(h)} \circ f''(y^{(h)})\big)\, P_{h\leftarrow\zeta},$$

where $\bar z^{(h)} = \partial E/\partial z^{(h)}$. Naumov's eq 77 keeps only the
$h = t$ term of the sum, $\tilde C^{(s,\zeta)} = P_{t\leftarrow s}^T A^{(t)}
P_{t\leftarrow\zeta}$; it is exact when $f'' = 0$ before the last step (ReLU, linear
units) and misses curvature otherwise (`intermediate_curvature=False` gives it).
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._activations import Activation


def second_derivative(activation: Activation, u: Float[Array, "*n"]) -> Array:
    """$f''(u)$, elementwise, by a JVP of the activation's derivative."""
    return jax.jvp(activation.derivative, (u,), (jnp.ones_like(u),))[1]


def kronecker_eigenvalues(
    C: Float[ArrayLike, "m m"], z: Float[ArrayLike, " n"]
) -> Float[Array, " mn"]:
    r"""The eigenvalues of $C \otimes z z^T$ by Naumov's identity, without forming
    it: $\|z\|^2 \lambda_i(C)$ and $(n-1)m$ zeros, ascending ($C$ symmetric)."""
    C, z = jnp.asarray(C), jnp.asarray(z)
    scaled = jnp.dot(z, z) * jnp.linalg.eigvalsh(0.5 * (C + C.T))
    zeros = jnp.zeros((z.shape[0] - 1) * C.shape[0], scaled.dtype)
    return jnp.sort(jnp.concatenate([scaled, zeros]))


def _check_layers(weights, biases):
    if len(weights) != len(biases) or not weights:
        raise ValueError(
            "`weights` and `biases` must be equally long, non-empty lists (one per "
            f"layer), got {len(weights)} and {len(biases)}."
        )
    for k, (W, b) in enumerate(zip(weights, biases)):
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ValueError(
                f"Layer {k}: `weights[{k}]` must be (m, n) and `biases[{k}]` (m,), got "
                f"{W.shape} and {b.shape}."
            )


def feedforward(weights: list, biases: list, x: ArrayLike, activation: Activation):
    r"""Forward propagation, $y^{(k)} = W^{(k)} z^{(k-1)} + b^{(k)}$,
    $z^{(k)} = f(y^{(k)})$: the lists $[y^{(1)}, \dots]$ and
    $[z^{(0)} = x, z^{(1)}, \dots]$."""
    weights = [jnp.asarray(W) for W in weights]
    biases = [jnp.asarray(b) for b in biases]
    _check_layers(weights, biases)
    zs, ys = [jnp.asarray(x)], []
    for W, b in zip(weights, biases):
        ys.append(W @ zs[-1] + b)
        zs.append(activation(ys[-1]))
    return ys, zs


def feedforward_gradients(
    weights: list, biases: list, x: ArrayLike, target: ArrayLike, activation: Activation
) -> list:
    r"""Lemma 1: $\partial E/\partial W^{(k)} = v^{(k)} z^{(k-1)T}$ for every layer,
    with $v$ propagated backward by eqs 18-19."""
    ys, zs = feedforward(weights, biases, x, activation)
    v = (zs[-1] - jnp.asarray(target)) * activation.derivative(ys[-1])
    grads = []
    for k in reversed(range(len(weights))):
        grads.append(jnp.outer(v, zs[k]))
        if k:
            v = (jnp.asarray(weights[k]).T @ v) * activation.derivative(ys[k - 1])
    return grads[::-1]


def feedforward_hessian_factors(
    weights: list, biases: list, x: ArrayLike, target: ArrayLike, activation: Activation
) -> list[tuple[Array, Array]]:
    r"""Theorem 1: for every layer the pair $(A^{(k)}, z^{(k-1)})$ with
    $\partial^2 E/\partial W^{(k)2} = A^{(k)} \otimes z^{(k-1)} z^{(k-1)T}$
    (row-major flattening of $W^{(k)}$), $A$ propagated backward as in the module
    docstring."""
    ys, zs = feedforward(weights, biases, x, activation)
    d1 = [activation.derivative(y) for y in ys]
    d2 = [second_derivative(activation, y) for y in ys]
    residual = zs[-1] - jnp.asarray(target)
    v = residual * d1[-1]
    A = jnp.diag(d1[-1] ** 2 + residual * d2[-1])
    factors = []
    for k in reversed(range(len(weights))):
        factors.append((A, zs[k]))
        if k:
            W = jnp.asarray(weights[k])
            C = W.T @ A @ W
            A = C * jnp.outer(d1[k - 1], d1[k - 1]) + jnp.diag((W.T @ v) * d2[k - 1])
            v = (W.T @ v) * d1[k - 1]
    return factors[::-1]


def feedforward_hessians(
    weights: list, biases: list, x: ArrayLike, target: ArrayLike, activation: Activation
) -> list[Array]:
    r"""The layer Hessians $A^{(k)} \otimes z^{(k-1)} z^{(k-1)T}$ as
    $(mn, mn)$ matrices."""
    return [
        jnp.kron(A, jnp.outer(z, z))
        for A, z in feedforward_hessian_factors(weights, biases, x, target, activation)
    ]


def rnn_forward(
    W: ArrayLike, U: ArrayLike, b: ArrayLike, xs: ArrayLike, activation: Activation
) -> tuple[Array, Array]:
    r"""$y^{(s)} = W x^{(s)} + U z^{(s-1)} + b$, $z^{(s)} = f(y^{(s)})$, $z^{(0)} = 0$,
    for the inputs `xs` $(t, n)$: `ys` $(t, m)$ and `zs` $(t+1, m)$ (with $z^{(0)}$)."""
    W, U, b, xs = map(jnp.asarray, (W, U, b, xs))
    m = W.shape[0]
    if (
        U.shape != (m, m)
        or b.shape != (m,)
        or xs.ndim != 2
        or xs.shape[1] != W.shape[1]
    ):
        raise ValueError(
            "Need `W` (m, n), `U` (m, m), `b` (m,) and `xs` (t, n); got "
            f"{W.shape}, {U.shape}, {b.shape} and {xs.shape}."
        )
    zs, ys = [jnp.zeros(m, W.dtype)], []
    for x in xs:
        ys.append(W @ x + U @ zs[-1] + b)
        zs.append(activation(ys[-1]))
    return jnp.stack(ys), jnp.stack(zs)


def _propagators(U, d1):
    """$P_{h\\leftarrow s}$ for $s \\le h$ (zero otherwise), shape (t, t, m, m)."""
    t, m = d1.shape
    P = [[jnp.zeros((m, m)) for _ in range(t)] for _ in range(t)]
    for s in range(t):
        P[s][s] = jnp.eye(m)
        for h in range(s + 1, t):
            P[h][s] = (U * d1[h - 1][None, :]) @ P[h - 1][s]
    return P


def _backward(W, U, b, xs, target, activation):
    ys, zs = rnn_forward(W, U, b, xs, activation)
    U = jnp.asarray(U)
    d1 = activation.derivative(ys)
    t = ys.shape[0]
    zbar = [None] * t
    v = [None] * t
    zbar[t - 1] = zs[-1] - jnp.asarray(target)
    for h in reversed(range(t)):
        if h < t - 1:
            zbar[h] = U.T @ v[h + 1]
        v[h] = zbar[h] * d1[h]
    return ys, zs, d1, jnp.stack(zbar), jnp.stack(v)


def bptt_gradients(
    W: ArrayLike,
    U: ArrayLike,
    b: ArrayLike,
    xs: ArrayLike,
    target: ArrayLike,
    activation: Activation,
) -> tuple[Array, Array, Array]:
    r"""Lemma 2 for $E = \tfrac12\|z^* - z^{(t)}\|^2$: the rank-$t$ sums
    $G_W = \sum_s \tilde v^{(s)} x^{(s)T}$, $G_U = \sum_s \tilde v^{(s)} z^{(s-1)T}$,
    $G_b = \sum_s \tilde v^{(s)}$, with $\tilde v^{(s)} = \partial E/\partial y^{(s)}$
    propagated back through time."""
    _, zs, _, _, v = _backward(W, U, b, xs, target, activation)
    xs = jnp.asarray(xs)
    return (
        sum(jnp.outer(v[s], xs[s]) for s in range(v.shape[0])),
        sum(jnp.outer(v[s], zs[s]) for s in range(v.shape[0])),
        jnp.sum(v, axis=0),
    )


def bptt_hessian_blocks(
    W: ArrayLike,
    U: ArrayLike,
    b: ArrayLike,
    xs: ArrayLike,
    target: ArrayLike,
    activation: Activation,
    *,
    intermediate_curvature: bool = True,
) -> Array:
    r"""The $m \times m$ blocks $M^{(s,\zeta)}$, shape $(t, t, m, m)$, of
    $\partial^2 E/\partial W^2 = \sum_{s,\zeta} M^{(s,\zeta)} \otimes
    x^{(s)} x^{(\zeta)T}$ (see the module docstring). With
    `intermediate_curvature=False`, Naumov's eq 77 as printed (only $h = t$)."""
    ys, _, d1, zbar, _ = _backward(W, U, b, xs, target, activation)
    U = jnp.asarray(U)
    t = ys.shape[0]
    d2 = second_derivative(activation, ys)
    P = _propagators(U, d1)
    curvature = zbar * d2  # diagonal of each node's own curvature
    blocks = []
    for s in range(t):
        row = []
        for zeta in range(t):
            M = P[t - 1][s].T @ ((d1[t - 1] ** 2)[:, None] * P[t - 1][zeta])
            first = max(s, zeta) if intermediate_curvature else t - 1
            for h in range(first, t):
                M = M + P[h][s].T @ (curvature[h][:, None] * P[h][zeta])
            row.append(M)
        blocks.append(jnp.stack(row))
    return jnp.stack(blocks)


def bptt_hessian(
    W: ArrayLike,
    U: ArrayLike,
    b: ArrayLike,
    xs: ArrayLike,
    target: ArrayLike,
    activation: Activation,
    *,
    intermediate_curvature: bool = True,
) -> Array:
    r"""Theorem 2: $\partial^2 E/\partial W^2 = \sum_{s,\zeta} M^{(s,\zeta)} \otimes
    x^{(s)} x^{(\zeta)T}$, a sum of $t^2$ Kronecker products, as an $(mn, mn)$
    matrix."""
    blocks = bptt_hessian_blocks(
        W, U, b, xs, target, activation, intermediate_curvature=intermediate_curvature
    )
    xs = jnp.asarray(xs)
    t = xs.shape[0]
    return sum(
        jnp.kron(blocks[s, z], jnp.outer(xs[s], xs[z]))
        for s in range(t)
        for z in range(t)
    )
