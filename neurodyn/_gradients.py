r"""Gradient methods: how $\partial E/\partial\theta$ flows through a fixed point.

Every method returns a fixed point $x^*(\theta, I)$ that JAX can differentiate, so
any loss of $x^*$ gets its gradient. The adjoint methods share one rule, the implicit
function theorem in forward mode with its transpose (`neurodyn._implicit`): for a
cotangent $\bar x = \partial E/\partial x^*$ they find the adjoint state

$$z = (\partial F/\partial x)^T z + \bar x \qquad\text{i.e.}\qquad
  (1 - \partial F/\partial x)^T z = \bar x$$

and return $\bar\theta = (\partial F/\partial\theta)^T z$,
$\bar I = (\partial F/\partial I)^T z$. For $E = \tfrac12\sum_O (T - x^*)^2$,
$\bar x = -J$, so $z = -z^*$ of Pineda's eq 17 and $\bar\theta = -d\theta/dt / \eta$.
They differ only in how $z$ is found; `UnrolledBPTT` instead differentiates the
integrator itself.
"""

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, ArrayLike, Float, PyTree

from ._batch import batched
from ._dynamics import relaxation_operator
from ._implicit import implicit_state, stop_gradients
from ._models.base import AbstractNetwork
from ._relax import (
    FixedPoint,
    as_relaxation,
    check_converged,
    initial_state,
    relax_patterns,
)
from ._results import RESULTS, select
from ._solvers.base import Relaxation, rms
from ._validation import (
    as_patterns,
    as_start,
    check_network,
    check_same_batch,
)


class AbstractGradientMethod(eqx.Module):
    """How the gradient of a loss flows through the relaxation to a fixed point."""

    @abc.abstractmethod
    def fixed_point(
        self,
        model: AbstractNetwork,
        I: PyTree,
        x0: Float[Array, "*p n"],
        relaxation: Relaxation,
    ) -> FixedPoint:
        """Relax one pattern `(N,)` or a batch `(P, N)`; the returned `x` is
        differentiable in `model` and `I`."""


class AbstractAdjointMethod(AbstractGradientMethod):
    """Differentiates the fixed-point equation $x^* = F(x^*)$ (implicit function
    theorem): the gradient costs one adjoint solve, whatever the relaxation took.

    Forward mode (`jax.jvp`, Hessians) solves with the transpose of `solve_adjoint`,
    which JAX derives; so `solve_adjoint` must be linear in `source` and built from
    transposable parts (lineax solves, loops of fixed length, or
    `jax.lax.custom_linear_solve`)."""

    @abc.abstractmethod
    def solve_adjoint(
        self,
        model: AbstractNetwork,
        x: Float[Array, " n"],
        I: PyTree,
        source: Float[Array, " n"],
        relaxation: Relaxation,
    ) -> tuple[Float[Array, " n"], RESULTS]:
        r"""Solve $(1 - \partial F/\partial x)^T z = $ `source` at $x$, for one
        pattern (a batch is a `jax.vmap` over this)."""

    def fixed_point(self, model, I, x0, relaxation):
        fp = relax_patterns(
            stop_gradients(model), stop_gradients(I), stop_gradients(x0), relaxation
        )
        x = implicit_state(
            (model, I),
            x_star=fp.x,
            converged=fp.converged,
            method=self,
            relaxation=relaxation,
        )
        return eqx.tree_at(lambda f: f.x, fp, x)


def _linear_field(model, x, I, b, transpose):
    r"""$v \mapsto (b - (1 - A)v)/\tau$ at $x$ ($A^T$ with `transpose`), linearised
    once: the field of the tangent or adjoint relaxation."""
    operator = relaxation_operator(model, x, I, transpose=transpose)
    return lambda v: (b - operator.mv(v)) / model.tau


class RecurrentBackprop(AbstractAdjointMethod):
    r"""Pineda's recurrent backpropagation: the adjoint ODE relaxed to steady state,

    $$\tau\, dz/dt = -z + (\partial F/\partial x)^T z + J,$$

    with the same steady-state solver and tolerances as the forward relaxation,
    started from $z = J$ (the first term of the Neumann series
    $z^* = \sum_k ((\partial F/\partial x)^T)^k J$, one iteration ahead of Pineda's
    $z = 0$). The vector field is one `jax.vjp` of the drive, so the
    method is local and matrix-free, as in analog hardware. By Almeida's argument the
    adjoint is stable whenever the forward fixed point is.

    ??? cite "References"

        ```bibtex
        @inproceedings{pineda1987generalization,
          title={Generalization of back propagation to recurrent and higher order
                 neural networks},
          author={Pineda, Fernando J.},
          booktitle={Neural Information Processing Systems},
          year={1987}
        }
        @inproceedings{almeida1987learning,
          title={A learning rule for asynchronous perceptrons with feedback in a
                 combinatorial environment},
          author={Almeida, Luis B.},
          booktitle={IEEE First International Conference on Neural Networks},
          year={1987}
        }
        ```
    """

    def solve_adjoint(self, model, x, I, source, relaxation):
        # A linear system: its one fixed point is stable when x* is (Almeida).
        relaxation = dataclasses.replace(relaxation, attractors_only=False)

        def relaxed(transpose):
            def solve(_, b):
                field = _linear_field(model, x, I, b, transpose)
                out = relaxation.solve(field, b, model.tau, scale=rms(b))
                if transpose:
                    return out.y, out.result
                # The tangent relaxation has no error channel: a failure is NaN.
                ok = out.result == RESULTS.successful
                return jnp.where(ok, out.y, jnp.nan), out.result

            return solve

        _, pullback = jax.vjp(lambda x_: model.drive(x_, I), x)
        z, result = jax.lax.custom_linear_solve(
            lambda v: v - pullback(v)[0],
            source,
            relaxed(True),
            relaxed(False),
            has_aux=True,
        )
        ok = result == RESULTS.successful
        return z, select(ok, result, RESULTS.adjoint_not_converged)


class ImplicitDiff(AbstractAdjointMethod):
    r"""The adjoint fixed point by a direct linear solve (lineax),

    $$(1 - \partial F/\partial x)^T z = J,$$

    with the operator given matrix-free by a `jax.vjp` of the drive; the default
    `lineax.LU()` materialises it ($O(N^2)$ memory per pattern). Pass e.g.
    `lineax.GMRES(rtol, atol)` to stay matrix-free.
    """

    linear_solver: lx.AbstractLinearSolver = lx.LU()

    def solve_adjoint(self, model, x, I, source, relaxation):
        del relaxation
        operator = relaxation_operator(model, x, I, transpose=True)
        sol = lx.linear_solve(operator, source, self.linear_solver, throw=False)
        ok = (sol.result == lx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.value))
        return sol.value, RESULTS.where(
            ok, RESULTS.successful, RESULTS.adjoint_not_converged
        )


class UnrolledBPTT(AbstractGradientMethod):
    """Backpropagation through time: differentiate the diffrax forward solve itself
    (`diffrax.RecursiveCheckpointAdjoint`). It needs no fixed-point theory and so
    serves as the reference, at a memory and time cost that grows with the number of
    solver steps. It equals the adjoint methods once the relaxation has settled to
    within its tolerances.

    It needs the ODE relaxation, and integrates with the one the solver's
    `ode_relaxation()` names: an [`neurodyn.ODERelaxation`][] itself, or the last
    solver of a [`neurodyn.Fallback`][] (the default), which must be one;
    iterations are not differentiated through.
    """

    def fixed_point(self, model, I, x0, relaxation):
        ode = relaxation.solver.ode_relaxation()
        if ode is None:
            raise ValueError(
                "`nd.UnrolledBPTT()` differentiates through the ODE solve, so it needs "
                "`solver=nd.ODERelaxation(...)` (or a diffrax solver), got "
                f"{relaxation.solver!r}."
            )
        relaxation = eqx.tree_at(lambda r: r.solver, relaxation, ode)
        return relax_patterns(model, I, x0, relaxation)


def pattern_errors(
    model: AbstractNetwork,
    I: Float[Array, "*p n"],
    T: Float[Array, "*p n"],
    x0: Float[Array, "*p n"],
    method: AbstractGradientMethod,
    relaxation: Relaxation,
) -> tuple[Float[Array, "*p"], FixedPoint]:
    r"""$E[a] = \tfrac12 \sum_{i \in O} (T_i^a - x_i^{*a})^2$ for every pattern (eqs 6,
    7) and the fixed points they were computed from (check `converged` before
    trusting them). Each pattern relaxes under `model.training_source(I, T)`; a
    batch relaxes as one (a fallback decides for the whole batch)."""
    source = batched(model.training_source, I, T)
    fp = method.fixed_point(model, source, x0, relaxation)
    return 0.5 * jnp.sum(model.error(fp.x, T) ** 2, axis=-1), fp


@eqx.filter_jit
def _value_and_grad(model, I, T, x0, method, relaxation):
    def total(model):
        errors, fp = pattern_errors(model, I, T, x0, method, relaxation)
        return jnp.sum(errors), fp  # E_total, eq 18

    (E, fp), grads = eqx.filter_value_and_grad(total, has_aux=True)(model)
    return check_converged(fp, (E, grads))


def check_method(method, name: str = "method") -> None:
    """A clear error, naming the argument `name`, unless `method` is a gradient
    method."""
    if not isinstance(method, AbstractGradientMethod):
        raise ValueError(
            f"`{name}` must be a gradient method: `nd.RecurrentBackprop()`, "
            "`nd.ImplicitDiff()`, `nd.UnrolledBPTT()`, `nd.SemiGradient()`, "
            "`nd.PhantomGradient(steps)` or `nd.EquilibriumPropagation(beta)`, got "
            f"{method!r}."
        )


def value_and_grad(
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike,
    *,
    method=RecurrentBackprop(),  # checked below, with a message naming the methods
    x0: ArrayLike | None = None,
    relaxation: Relaxation | None = None,
    **deprecated,
) -> tuple[Float[Array, ""], PyTree]:
    r"""The error at the fixed point and its gradient with respect to the model.

    $$E = \tfrac12 \sum_{a} \sum_{i\in O} \big(T_i^a - x_i^{*}(I^a)\big)^2$$

    (Pineda eqs 6, 7, 18), with $x^*$ the steady state of
    $\tau\, dx/dt = -x + F(x; \theta, I)$ relaxed from `x0`.

    **Arguments:**

    - `model`: any network.
    - `I`: sources, $(N,)$ or $(P, N)$.
    - `T`: targets, same shape as `I`; only output units count.
    - `method`: [`neurodyn.RecurrentBackprop`][] (default), [`neurodyn.ImplicitDiff`][]
        or [`neurodyn.UnrolledBPTT`][].

    **Other arguments:** `x0` as for [`neurodyn.relax`][]; `relaxation`, a
    [`neurodyn.Relaxation`][], for the forward relaxation and the adjoint one (all
    its settings but `attractors_only`); the old keywords `solver=`, `rtol=`, ...
    still work, deprecated.

    **Returns:**

    `(E, grads)`, where `grads` has the structure of `model` (equinox convention):
    `grads.weights` is $\partial E/\partial W$; masks and static fields are `None`.

    **Raises:**

    A runtime error whose message says the dynamics did not converge, or settled
    on an unstable fixed point (and what to try), when the forward or adjoint
    relaxation of any pattern fails.
    """
    check_network(model)
    check_method(method)
    relaxation = as_relaxation("value_and_grad", relaxation, deprecated)
    I = as_patterns("I", I, model.n_units)
    T = as_patterns("T", T, model.n_units)
    check_same_batch(I, T)
    x0 = as_start(x0, I)
    return _value_and_grad(
        model, I, T.astype(I.dtype), initial_state(model, I, x0), method, relaxation
    )
