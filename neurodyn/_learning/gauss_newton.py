r"""The linear solves of the linearly implicit slow integrator: the slow ODE's
stiffness is the loss curvature, and its Gauss-Newton part is applied matrix-free.

Along the slow manifold $\dot\theta = \eta\,(\partial F/\partial\theta)^T z^*$
with $(1 - A^T) z^* = J(x^*)$, and its Jacobian in $\theta$ is, up to second
derivatives of $F$,

$$J_\theta = -\eta\,G,\qquad G = \Phi^T H_E\,\Phi,\qquad
  \Phi = \frac{dx^*}{d\theta} = (1 - A)^{-1}\frac{\partial F}{\partial\theta},\quad
  H_E = -\frac{\partial J}{\partial x},$$

the Gauss-Newton matrix of $E(\theta)$, summed over the patterns: symmetric positive
semidefinite, of rank at most $P\,n_{\text{out}}$ for the squared error. A product
$G v$ costs one forward linear solve per pattern ($\Phi v$), one Jacobian-vector
product of the error, one adjoint solve and one pullback of the batched drive. The
systems $(1 + c\,\eta\,G)\,k = b$ of a Rosenbrock-W step ($c = \gamma h$) are
solved by lineax's conjugate gradients; the fast variables' warm starts ($x$, $z$ in
the slow state) are not stiff and get $J = 0$ ($k = b$).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import PyTree

from .._dynamics import parameter_cotangent
from .._relax import relax_patterns
from .._results import RESULTS
from .._solvers.base import Relaxation
from .fast_solves import linear_solve


class GaussNewtonResolvent(eqx.Module):
    """`resolvent(t, state, args, c)` for `rosenbrock.LinearisedTerm` on the slow
    ODE (module docstring): the fixed point $x^*$ at the state's weights (warm-started
    from the state's $x$), then conjugate gradients on $1 + c\\,\\eta\\,G$ to a
    relative residual `rtol` in at most `max_steps` products.

    - `relaxation`: the steady-state solve of $x^*$.
    - `linear`: the forward and adjoint solves inside each product $Gv$.
    """

    relaxation: Relaxation
    linear: Relaxation
    rtol: float
    max_steps: int = eqx.field(static=True)

    def __call__(self, t, state, args, c):
        del t
        x, _, params = state
        static, I, T, eta = args[:4]
        model = eqx.combine(params, static)
        source = jax.vmap(model.training_source)(I, T)
        fp = relax_patterns(model, source, x, self.relaxation)
        product = _gauss_newton_product(model, fp.x, source, T, self.linear)
        scale = jnp.asarray(c, fp.x.dtype) * eta

        def operator_mv(v):
            return jax.tree.map(lambda a, b: a + scale * b, v, product(v))

        operator = lx.FunctionLinearOperator(
            operator_mv,
            jax.eval_shape(lambda: params),
            tags=lx.positive_semidefinite_tag,
        )
        relaxed = jnp.all(fp.result == RESULTS.successful)

        def solve(b, guess):
            bx, bz, b_theta = b
            size = optx.rms_norm(b_theta)
            cg = lx.CG(
                rtol=self.rtol,
                atol=self.rtol * size,
                norm=optx.rms_norm,
                max_steps=self.max_steps,
            )
            out = lx.linear_solve(
                operator, b_theta, cg, options={"y0": guess[2]}, throw=False
            )
            ok = relaxed & (out.result == lx.RESULTS.successful)
            return (bx, bz, out.value), ok

        return solve


def _gauss_newton_product(model, x, source, T, linear: Relaxation):
    r"""$v \mapsto G v = \Phi^T H_E \Phi v$ at the fixed points `x` (module
    docstring), matrix-free."""

    def product(v: PyTree) -> PyTree:
        _, b = eqx.filter_jvp(lambda m: jax.vmap(m.drive)(x, source), (model,), (v,))
        u, _ = linear_solve(model, x, source, b, b, linear, False)
        _, minus_h_u = jax.jvp(lambda y: model.error(y, T), (x,), (u,))
        w, _ = linear_solve(model, x, source, -minus_h_u, -minus_h_u, linear, True)
        return parameter_cotangent(model, x, source, w)[0]

    return product
