r"""Phantom gradients: backpropagation through a few damped steps at the fixed point."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._gradients import AbstractAdjointMethod
from ._results import RESULTS
from ._validation import as_count, as_number


class PhantomGradient(AbstractAdjointMethod):
    r"""The unrolled phantom gradient of Geng et al. (2021): differentiate $k$ damped
    steps $x_{j+1} = (1 - \lambda)\,x_j + \lambda F(x_j)$ started at the fixed point
    $x_0 = x^*$ (held constant), instead of the fixed-point equation itself.

    Since every $x_j = x^*$, backpropagating through the $k$ steps with
    $A = \partial F/\partial x$ at $x^*$ and $H = (1 - \lambda) + \lambda A$ gives
    the adjoint

    $$z_k = \lambda \sum_{m=0}^{k-1} (H^T)^m\, \bar x, \qquad
      z_{j+1} = (1-\lambda)\, z_j + \lambda\,(A^T z_j + \bar x),\quad z_0 = 0,$$

    which is $k$ damped Richardson steps on the exact adjoint equation
    $(1 - A^T) z = \bar x$; the method returns $\bar\theta = (\partial F/
    \partial\theta)^T z_k$ like every adjoint method. As $k \to \infty$,
    $z_k \to \lambda (1 - H^T)^{-1}\bar x = (1 - A^T)^{-1}\bar x$, the exact gradient,
    whenever the spectral radius of $H$ is below one (a stable fixed point with
    $\lambda$ small enough); the error shrinks like $\rho(H)^k$. With $k = 1$,
    $\lambda = 1$ it is the Jacobian-free gradient $z = \bar x$
    ([`neurodyn.SemiGradient`][]). The cost is $k$ vector-Jacobian products and
    $O(N)$ memory per pattern, whatever the relaxation took.

    ??? cite "References"

        ```bibtex
        @inproceedings{geng2021training,
          title={On training implicit models},
          author={Geng, Zhengyang and Zhang, Xin-Yu and Bai, Shaojie and Wang, Yisen
                  and Lin, Zhouchen},
          booktitle={Advances in Neural Information Processing Systems},
          year={2021}
        }
        ```
    """

    steps: int = eqx.field(static=True, default=5)
    damping: float | Float[Array, ""] = 0.5

    def __check_init__(self):
        as_count("steps", self.steps)
        damping = as_number("damping", self.damping)
        if isinstance(damping, float) and not 0 < damping <= 1:
            raise ValueError(
                f"`damping` must be in (0, 1] (the step size lambda of the damped "
                f"iteration), got {self.damping!r}."
            )

    def solve_adjoint(self, model, x, I, source, relaxation):
        r"""$z_k$ of the class docstring for `source` $= \bar x$."""
        del relaxation
        _, vjp = jax.vjp(lambda x_: model.drive(x_, I), x)
        lam = self.damping

        def step(_, z):
            return (1 - lam) * z + lam * (vjp(z)[0] + source)

        z = jax.lax.fori_loop(0, self.steps, step, jnp.zeros_like(source))
        return z, RESULTS.where(
            jnp.all(jnp.isfinite(z)),
            RESULTS.successful,
            RESULTS.adjoint_not_converged,
        )


PhantomGradient.__init__.__doc__ = """**Arguments:**

- `steps`: the number $k \\ge 1$ of unrolled damped steps (default 5).
- `damping`: the step size $\\lambda \\in (0, 1]$ (default 0.5).
"""
