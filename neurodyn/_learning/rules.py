r"""Learning rules for the fixed points of a rate network (Zhu & Rosenbaum, 2024).

For $\tau\, dr/dt = -r + f(W r + x)$ with fixed points $r^a = f(W r^a + x^a)$, gains
$G_a = \mathrm{diag}\, f'(W r^a + x^a)$ and a cost $J = \sum_a w_a L(r^a, y^a)$
(the paper's $w_a = 1/m$), every rule gives an update $\Delta W = -\eta D$ from the
fixed points and the output gradients $\nabla_r L^a$:

- $\Delta W_1$ (eq 2.6), the Euclidean gradient:
  $D_1 = \nabla_W J = \sum_a w_a\, G_a [I - G_a W]^{-T} \nabla_r L^a\, (r^a)^T$;
- $\Delta W_2$ (eq 2.17), a gradient step on $A_a = [G_a - G_a W G_a]^{-1}$ mapped
  back to $W$, $\Delta W^a_2 = F_a^{-1}(F_a(W) + \Delta A_a) - W$;
- $\Delta W_3$ (eq 2.19), its linearisation in $\eta$:
  $\Delta W^a_3 = -\eta\, [I - W G_a] G_a \nabla_r L^a\, (r^a)^T
  [I - G_a W]^T [I - G_a W]$, free of matrix inverses.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PyTree, Scalar

from .._activations import identity
from .._gradients import AbstractGradientMethod, ImplicitDiff, check_method
from .._models.base import AbstractNetwork
from .._models.first_order import RateNetwork
from .._relax import (
    FixedPoint,
    as_relaxation,
    check_converged,
    initial_state,
)
from .._solvers.base import Relaxation
from .._validation import (
    as_float_array,
    as_number,
    as_patterns,
    as_start,
    check_finite,
    check_instance,
    check_same_batch,
)


Loss = Callable[[Float[Array, " n"], Float[Array, " n"]], Scalar]


def _check_rate_network(model) -> None:
    if not isinstance(model, RateNetwork):
        raise ValueError(
            "The Zhu & Rosenbaum learning rules are derived for the rate network "
            "`tau dr/dt = -r + f(W r + x)`: `model` must be an `nd.RateNetwork`, got "
            f"{type(model).__name__}."
        )


def gains(
    model: RateNetwork, r: Float[Array, "p n"], I: Float[Array, "p n"]
) -> Float[Array, "p n"]:
    r"""The diagonals of $G_a = \mathrm{diag}\, f'(W r^a + x^a)$, one row a pattern."""
    return model.activation.derivative(jax.vmap(model.net_input)(r, I))


def _factors(model, r, I, cotangents):
    r"""Per pattern: $p = [I - W G] G \nabla_r L$, $q = [I - G W]^T [I - G W] r$ and
    $s = (G [I - G W] r)^T p$, so that $\Delta W_3 = -\eta\, p q^T$ and
    $\Delta W_2 = -\eta\, p q^T / (1 - \eta s)$."""
    W = model.effective_weights
    g = gains(model, r, I)
    u = g * cotangents  # G dL/dr
    p = u - (g * u) @ W.T  # [I - W G] G dL/dr
    v = r - g * (r @ W.T)  # [I - G W] r
    q = v - (g * v) @ W  # [I - G W]^T [I - G W] r
    s = jnp.sum(g * v * p, axis=-1)
    return p, q, s


class AbstractLearningRule(eqx.Module):
    r"""An update rule for the weights of an [`neurodyn.RateNetwork`][] from its fixed
    points.

    `direction` returns $D$ with $\Delta W = -\eta D$, so that `optax.sgd(eta)`
    applied to $D$ performs the rule exactly (for $\Delta W_2$, whose step is
    nonlinear in $\eta$, with the rule's own `learning_rate` equal to `eta`); any
    other optax optimizer treats $D$ as a preconditioned gradient.
    """

    @abc.abstractmethod
    def direction(
        self,
        model: RateNetwork,
        r: Float[Array, "p n"],
        I: Float[Array, "p n"],
        cotangents: Float[Array, "p n"],
        weights: Float[Array, " p"],
        gradient: Callable[[], Float[Array, "n n"]],
    ) -> Float[Array, "n n"]:
        r"""$D$ with $\Delta W = -\eta D$ for the cost $J = \sum_a w_a L(r^a, y^a)$.

        **Arguments:**

        - `model`: the rate network at its current weights.
        - `r`: the fixed points $r^a$, $(P, N)$.
        - `I`: the sources $x^a$, $(P, N)$.
        - `cotangents`: $\nabla_r L(r^a, y^a)$ of each pattern's own loss, $(P, N)$.
        - `weights`: $w_a$, $(P,)$.
        - `gradient`: called (only by rules that need it) for the Euclidean
            gradient $\nabla_W J$.
        """


class DW1(AbstractLearningRule):
    r"""$\Delta W_1$: gradient descent with the Euclidean gradient (eqs 2.5, 2.6),

    $$\Delta W_1 = -\eta_W \nabla_W J
      = -\eta_W \sum_a w_a\, G_a [I - G_a W]^{-T} \nabla_r L^a\, (r^a)^T.$$

    The gradient is not formed from this closed form but by differentiating through
    the fixed point (the adjoint of [`neurodyn.ImplicitDiff`][] or
    [`neurodyn.RecurrentBackprop`][]; in `nd.train`, its `method`).
    """

    def direction(self, model, r, I, cotangents, weights, gradient):
        _check_rate_network(model)
        return gradient()


class DW2(AbstractLearningRule):
    r"""$\Delta W_2$: gradient descent on the reparameterised weights (eq 2.17).

    Each pattern has its own $A_a = F_a(W) = [G_a - G_a W G_a]^{-1}$, under which the
    linearised fixed point is the linear model $r = G A G x$; one gradient step
    $\Delta A_a = -\eta_A\, G_a \nabla_r L^a (r^a)^T G_a^{-1} A_a^{-T}$ is mapped back:

    $$\Delta W^a_2 = F_a^{-1}(F_a(W) + \Delta A_a) - W
      = -\Big[[I - G_a W]^{-1} G_a - \eta_A G_a^2 \nabla_r L^a (r^a)^T
        [I - G_a W]^T G_a\Big]^{-1} + G_a^{-1} - W,$$

    and $\Delta W_2 = \sum_a w_a \Delta W^a_2$. The bracket is a rank-one update of
    $[G_a^{-1} - W]^{-1}$, so by Sherman-Morrison this is evaluated without any
    inverse (and without $G_a^{-1}$) as

    $$\Delta W^a_2 = \frac{\Delta W^a_3}{1 - \eta_A s_a}, \qquad
      s_a = (r^a)^T [I - G_a W]^T G_a [I - W G_a] G_a \nabla_r L^a,$$

    with $\Delta W^a_3$ of [`neurodyn.DW3`][]. The step is nonlinear in $\eta_A$,
    which is therefore a field of the rule (a float, or an array to vmap over).

    With `pooled=True` (linear $f$ only, where every $G_a = I$ and all patterns
    share $A = [I - W]^{-1}$) the patterns' $\Delta A_a$ are summed before the map
    back: exact gradient descent on $J_A(A) = \sum_a w_a L(A x^a, y^a)$, the paper's
    eq 3.8, $\Delta W_2 = [I - W] - ([I - W]^{-1} + \Delta A)^{-1}$.
    """

    learning_rate: float | Float[Array, ""]
    pooled: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        # An array learning rate may be traced (e.g. vmapped over rates).
        as_number("learning_rate", self.learning_rate)

    def direction(self, model, r, I, cotangents, weights, gradient):
        _check_rate_network(model)
        eta = self.learning_rate
        if self.pooled:
            if model.activation != identity:
                raise ValueError(
                    "`DW2(pooled=True)` needs a linear network "
                    "(`activation=nd.identity`), where all patterns share one "
                    f"reparameterisation; got activation {model.activation.name!r}."
                )
            W = model.effective_weights
            eye = jnp.eye(W.shape[0], dtype=W.dtype)
            x = r - r @ W.T  # the source reaching the units: x = [I - W] r
            delta_A = -eta * (weights[:, None] * cotangents).T @ x
            # ([I - W]^-1 + dA)^-1 = (I + [I - W] dA)^-1 [I - W]
            new = jnp.linalg.solve(eye + (eye - W) @ delta_A, eye - W)
            delta_W = (eye - W) - new
        else:
            p, q, s = _factors(model, r, I, cotangents)
            scale = weights / (1 - eta * s)
            delta_W = -eta * (scale[:, None] * p).T @ q
        return jnp.where(model.connectivity, -delta_W / eta, 0)


class DW3(AbstractLearningRule):
    r"""$\Delta W_3$: the reparameterised rule linearised in $\eta_A$ (eq 2.19),

    $$\Delta W_3 = -\eta_A \sum_a w_a\, [I - W G_a] G_a \nabla_r L^a\, (r^a)^T
      [I - G_a W]^T [I - G_a W],$$

    which needs no matrix inverse. It equals $B_a \Delta W^a_1 C_a$ with
    $B_a = [I - W G_a][I - W G_a]^T$, $C_a = [I - G_a W]^T [I - G_a W]$ (eq 2.20):
    gradient descent under a non-Euclidean metric on $W$.
    """

    def direction(self, model, r, I, cotangents, weights, gradient):
        _check_rate_network(model)
        p, q, _ = _factors(model, r, I, cotangents)
        return jnp.where(model.connectivity, (weights[:, None] * p).T @ q, 0)


class SquaredError(eqx.Module):
    r"""The paper's $L(r, y) = \|r - y\|^2$, on the output units only (a Module, so
    that a new instance per call does not recompile)."""

    output_units: Bool[Array, " n"]

    def __call__(self, r: Float[Array, " n"], y: Float[Array, " n"]) -> Scalar:
        return jnp.sum(jnp.where(self.output_units, y - r, 0) ** 2)


@eqx.filter_jit
def _rule_direction(rule, model, I, T, weights, loss, x0, method, relaxation):
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def fixed_points(params):
        fp = method.fixed_point(eqx.combine(params, static), I, x0, relaxation)
        return fp.x, fp

    r, vjp, fp = eqx.filter_vjp(fixed_points, params, has_aux=True)
    losses = jax.vmap(loss)(r, T)
    cotangents = jax.vmap(jax.grad(loss))(r, T)

    def gradient():
        (grads,) = vjp(weights[:, None] * cotangents)
        return grads.weights

    D = rule.direction(model, r, I, cotangents, weights, gradient)
    return jnp.sum(weights * losses), D, fp


def rule_direction(
    rule: AbstractLearningRule,
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike,
    *,
    loss: Loss | None = None,
    weights: ArrayLike | None = None,
    method: AbstractGradientMethod = ImplicitDiff(),
    x0: ArrayLike | None = None,
    relaxation: Relaxation | None = None,
    throw: bool = True,
    **deprecated,
) -> tuple[Float[Array, ""], Float[Array, "n n"], FixedPoint]:
    r"""Relax the patterns and return the cost and a rule's update direction.

    $$J = \sum_a w_a L(r^a, y^a), \qquad \Delta W = -\eta D,$$

    with $r^a$ the fixed point of `model` under source $x^a$ = `I[a]`.

    **Arguments:**

    - `rule`: [`neurodyn.DW1`][], [`neurodyn.DW2`][] or [`neurodyn.DW3`][].
    - `model`: an [`neurodyn.RateNetwork`][].
    - `I`, `T`: sources and targets, $(P, N)$ and $(P, \dots)$; `T[a]` is passed to
        the loss as it is.
    - `loss`: $L(r, y)$ for one pattern, a scalar; default the paper's
        $\|r - y\|^2$ on output units. Pass a function defined once (not a new
        lambda per call), or every call recompiles.
    - `weights`: $w_a$, default $1/P$ (the paper's mean over patterns).

    **Other arguments:**

    - `method`: how $\nabla_W J$ flows through the fixed points (used by `DW1`),
        default [`neurodyn.ImplicitDiff`][].
    - `x0`, `relaxation`: as for [`neurodyn.relax`][] (the old keywords `solver=`,
        `rtol=`, ... still work, deprecated).
    - `throw`: raise if a relaxation did not settle (default); if False, the
        failure is returned: check `fixed_point.converged` yourself.

    **Returns:** `(J, D, fixed_point)`.
    """
    check_instance(
        "rule", rule, AbstractLearningRule, "`nd.DW1()`, `nd.DW2(eta)` or `nd.DW3()`"
    )
    check_method(method)
    _check_rate_network(model)
    relaxation = as_relaxation("rule_direction", relaxation, deprecated)
    I = jnp.atleast_2d(as_patterns("I", I, model.n_units))
    x0 = as_start(x0, I)
    if loss is None:  # the squared error on the output units: T is (P, N)
        T = jnp.atleast_2d(as_patterns("T", T, model.n_units))
        check_same_batch(I, T)
    T = as_float_array("T", T).astype(I.dtype)
    T = T.reshape(I.shape[0], -1) if T.ndim < 2 and T.size else T
    if T.ndim < 2 or T.shape[0] != I.shape[0]:
        raise ValueError(
            f"`T` must have one row per pattern of `I` ({I.shape[0]}), got shape "
            f"{T.shape}."
        )
    check_finite("T", T)
    if weights is None:
        weights = jnp.full(I.shape[0], 1 / I.shape[0], dtype=I.dtype)
    weights = as_float_array("weights", weights).astype(I.dtype)
    if weights.shape != (I.shape[0],):
        raise ValueError(
            f"`weights` must have shape ({I.shape[0]},) (one per pattern), got "
            f"{weights.shape}."
        )
    check_finite("weights", weights)
    if loss is not None and not callable(loss):
        raise TypeError(f"`loss` must be a function loss(r, y), got {loss!r}.")
    loss = SquaredError(model.output_units) if loss is None else loss
    J, D, fp = _rule_direction(
        rule,
        model,
        I,
        T,
        weights,
        loss,
        initial_state(model, I, x0),
        method,
        relaxation,
    )
    if throw:
        J, D = check_converged(fp, (J, D))
    return J, D, fp


def rule_gradients(
    rule: AbstractLearningRule,
    model: RateNetwork,
    grads: PyTree,
    fp: FixedPoint,
    I: Float[Array, "p n"],
    T: Float[Array, "p n"],
    coefficients: Float[Array, " p"],
) -> PyTree:
    r"""What [`neurodyn.train`][] feeds its optimizer under `rule`: `grads` (of
    $\sum_a c_a E[a]$, $E[a] = \tfrac12 \sum_O (T^a - r^a)^2$) with the weights
    entry replaced by the rule's direction $D$."""
    check_same_batch(I, T)
    cotangents = -model.error(fp.x, T)  # dE[a]/dr
    D = rule.direction(model, fp.x, I, cotangents, coefficients, lambda: grads.weights)
    return eqx.tree_at(lambda g: g.weights, grads, D)
