r"""Jacobian regularisation of fixed points (Bai et al. 2021): penalise
$\|\partial F/\partial x\|_F^2$ at $x^*$, estimated by Hutchinson's trace estimator and
differentiated through the fixed point."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Scalar

from .._batch import batched
from .._gradients import AbstractGradientMethod, ImplicitDiff, check_method
from .._models.base import AbstractNetwork
from .._relax import as_relaxation, check_converged, initial_state
from .._solvers.base import Relaxation
from .._validation import (
    as_count,
    as_number,
    as_patterns,
    as_start,
    check_instance,
    check_network,
    check_same_batch,
)


def hutchinson_frobenius(
    model: AbstractNetwork,
    x: Float[Array, " n"],
    I: PyTree,
    key: PRNGKeyArray,
    probes: int,
) -> Scalar:
    r"""$\frac1K \sum_{k=1}^K \|A v_k\|^2$ with $A = \partial F/\partial x$ at $x$ and
    $v_k \sim \mathcal N(0, 1)$: an unbiased estimate of
    $\mathbb E\|Av\|^2 = \mathrm{tr}(A^T A) = \|A\|_F^2$ (variance
    $2\|A^TA\|_F^2/K$), from $K$ Jacobian-vector products, no Jacobian formed."""
    v = jr.normal(key, (probes, x.shape[0]), dtype=x.dtype)
    products = jax.vmap(lambda v_: jax.jvp(lambda x_: model.drive(x_, I), (x,), (v_,)))
    _, Av = products(v)
    return jnp.mean(jnp.sum(Av**2, axis=-1))


class JacobianPenalty(eqx.Module):
    r"""The extra loss term $\gamma \sum_a c_a \|\partial F/\partial x(x^*_a)\|_F^2$
    for [`neurodyn.train`][] (`regularizer=`), each norm by
    `probes` Hutchinson probes drawn afresh every update.

    Small Jacobians keep the fixed point far inside its stability region (the
    eigenvalues of $(-1 + \partial F/\partial x)/\tau$ have real part below
    $(-1 + \|\partial F/\partial x\|_2)/\tau$) and make relaxation fast (Bai et al.
    2021). The term depends on the weights directly and through $x^*$; the gradient
    method's adjoint carries the second part.

    ??? cite "References"

        ```bibtex
        @inproceedings{bai2021stabilizing,
          title={Stabilizing equilibrium models by {J}acobian regularization},
          author={Bai, Shaojie and Koltun, Vladlen and Kolter, J. Zico},
          booktitle={International Conference on Machine Learning},
          year={2021}
        }
        ```
    """

    strength: float | Float[Array, ""]
    probes: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        as_number("strength", self.strength, strict=False)
        as_count("probes", self.probes)

    def __call__(
        self,
        model: AbstractNetwork,
        x: Float[Array, "p n"],
        source: PyTree,
        coefficients: Float[Array, " p"],
        key: PRNGKeyArray,
    ) -> Scalar:
        r"""$\gamma\sum_a c_a \widehat{\|A_a\|_F^2}$ at the fixed points `x`."""
        keys = jr.split(key, x.shape[0])
        norms = jax.vmap(
            lambda x_, i, k: hutchinson_frobenius(model, x_, i, k, self.probes)
        )(x, source, keys)
        return self.strength * jnp.sum(coefficients * norms)


JacobianPenalty.__init__.__doc__ = """**Arguments:**

- `strength`: $\\gamma \\ge 0$.
- `probes`: Hutchinson probes per pattern and update (default 1, as Bai et al.).
"""


@eqx.filter_jit
def _jacobian_norm(model, I, T, x0, key, probes, method, relaxation):
    source = I if T is None else batched(model.training_source, I, T)
    fp = method.fixed_point(model, source, x0, relaxation)
    keys = jr.split(key, I.shape[0])
    norms = jax.vmap(lambda x_, i, k: hutchinson_frobenius(model, x_, i, k, probes))(
        fp.x, source, keys
    )
    return jnp.sum(norms), fp


def jacobian_norm(
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike | None = None,
    *,
    key: PRNGKeyArray,
    probes: int = 1,
    method: AbstractGradientMethod = ImplicitDiff(),
    x0: ArrayLike | None = None,
    relaxation: Relaxation | None = None,
    **deprecated,
) -> Scalar:
    r"""Hutchinson's estimate of $\sum_a \|\partial F/\partial x(x^*_a)\|_F^2$ over
    the fixed points of the patterns `I`, differentiable in `model` through the fixed
    points (by `method`): `eqx.filter_grad` of it is the gradient of the penalty.

    **Arguments:**

    - `model`: any network; `I`: sources $(N,)$ or $(P, N)$.
    - `T`: targets like `I`; if given, every pattern relaxes under
        `model.training_source(I, T)`, as in [`neurodyn.train`][] (so the value is
        the [`neurodyn.JacobianPenalty`][] that `train` adds, for a model whose
        learning phase is clamped, such as the
        [`neurodyn.ContentAddressableMemory`][]'s master); `None`: under `I`.
    - `key`: the random key of the probes; `probes`: probes per pattern.
    - `method`: the gradient method through $x^*$, default
        [`neurodyn.ImplicitDiff`][].

    **Other arguments:** `x0`, `relaxation` as for [`neurodyn.relax`][] (the old
    keywords `solver=`, `rtol=`, ... still work, deprecated).

    **Raises:** the non-convergence error of [`neurodyn.value_and_grad`][] if a
    relaxation fails.
    """
    check_network(model)
    check_method(method)
    as_count("probes", probes)
    check_instance("key", key, jax.Array, "a JAX random key, e.g. `jr.key(0)`")
    relaxation = as_relaxation("jacobian_norm", relaxation, deprecated)
    I = jnp.atleast_2d(as_patterns("I", I, model.n_units))
    if T is not None:
        T = jnp.atleast_2d(as_patterns("T", T, model.n_units).astype(I.dtype))
        check_same_batch(I, T)
    x0 = initial_state(model, I, as_start(x0, I))
    value, fp = _jacobian_norm(model, I, T, x0, key, probes, method, relaxation)
    return check_converged(fp, value)
