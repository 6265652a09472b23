r"""The semi-gradient of implicit recurrent networks: the adjoint without its
recurrence."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._gradients import AbstractAdjointMethod
from .._results import RESULTS


class SemiGradient(AbstractAdjointMethod):
    r"""The paper's semi-gradient: differentiate $x^* = F(x^*)$ treating the activities
    that reappear inside $F$ as constants.

    The exact adjoint solves $z = \bar x + A^T z$ with $A = \partial F/\partial x$ at
    the fixed point, i.e. $z = (1 - A^T)^{-1}\bar x = \sum_{k\ge0}(A^T)^k \bar x$
    (Neumann series). The semi-gradient keeps only the feed-forward part $A_{ff}$
    of $A$ (the entries in `feedforward`; none by default):

    $$z_{\mathrm{semi}} = \bar x + A_{ff}^T z_{\mathrm{semi}}
      = (1 - A_{ff}^T)^{-1}\bar x,$$

    and returns $\bar\theta = (\partial F/\partial\theta)^T z_{\mathrm{semi}}$ like
    every adjoint method. With no feed-forward part, $z_{\mathrm{semi}} = \bar x$:
    the Neumann series cut after its first term. For one implicit layer
    $Y = f(WY + QX + T)$ this replaces the exact derivative (the paper's eqs 4-6)

    $$\frac{\partial Y}{\partial W} = (1 - f'\odot W)^{-1} f' \odot \delta_Y
    \qquad\text{by}\qquad f' \odot \delta_Y,$$

    so $\partial E/\partial W \approx (f' \odot \partial E/\partial Y)\, Y^T$,
    $\partial E/\partial Q \approx (f' \odot \partial E/\partial Y)\, X^T$,
    $\partial E/\partial T \approx f' \odot \partial E/\partial Y$. Units without a
    target (and their incoming weights) get no gradient: the "indirect training"
    through lateral connections is lost. For stacked layers pass
    `feedforward=net.feedforward_connections`
    ([`neurodyn.ImplicitRecurrentNetwork`][]): the error is backpropagated through
    the $Q$ connections from layer to layer as in a feed-forward network, with the
    lateral and feedback inputs frozen at their equilibrium values (what
    `detach()` on those inputs gives in PyTorch).

    **How far from the exact gradient.** With $A_r = A - A_{ff}$ the truncated part,
    the exact adjoint is $z = (1 - A_{ff}^T - A_r^T)^{-1} \bar x$. With no
    feed-forward part, $z - z_{\mathrm{semi}} = \sum_{k\ge1}(A^T)^k\bar x$, so in any
    norm with $\|A\| < 1$

    $$\|z - z_{\mathrm{semi}}\| \le \frac{\|A\|}{1 - \|A\|}\,\|\bar x\|.$$

    It is exact when the recurrent weights vanish (as at the paper's
    initialisation) and first-order accurate in them. The truncated gradient is
    not the gradient of any loss in general, but it needs no adjoint relaxation:
    the `relaxation` argument is unused. The Jacobian is formed (`jax.jacfwd`) only
    when a `feedforward` mask is given.

    **Jacobian-free backpropagation.** With no feed-forward part this is the
    Jacobian-free backpropagation (JFB) of Fung et al. (2022) for implicit
    networks: $\bar\theta = (\partial F/\partial\theta)^T \bar x$, the gradient
    with $(1 - \partial F/\partial x)^{-1}$ replaced by the identity. It is a
    descent direction of the true loss when $\partial F/\partial x$ is small
    enough (their Theorem 3.1), and it is [`neurodyn.PhantomGradient`][] with one
    undamped step.

    ??? cite "References"

        ```bibtex
        @inproceedings{fung2022jfb,
          title={{JFB}: Jacobian-free backpropagation for implicit networks},
          author={Fung, Samy Wu and Heaton, Howard and Li, Qiuwei and McKenzie,
                  Daniel and Osher, Stanley and Yin, Wotao},
          booktitle={AAAI Conference on Artificial Intelligence},
          year={2022}
        }
        ```

        The semi-gradient is section 3.3 of "A novel approach to stationary input
        processing with recurrent neural networks in deep learning" (implicit
        recurrent networks).
    """

    feedforward: Bool[Array, "n n"] | None = eqx.field(
        default=None, converter=lambda m: None if m is None else jnp.asarray(m)
    )

    def __check_init__(self):
        mask = self.feedforward
        if mask is not None and (
            mask.dtype != jnp.bool_ or mask.ndim != 2 or mask.shape[0] != mask.shape[1]
        ):
            raise ValueError(
                "`feedforward` must be a square boolean mask (N, N), e.g. "
                "`net.feedforward_connections`; got dtype "
                f"{mask.dtype} and shape {mask.shape}."
            )

    def solve_adjoint(
        self,
        model,
        x: Float[Array, " n"],
        I,
        source: Float[Array, " n"],
        relaxation,
    ) -> tuple[Float[Array, " n"], RESULTS]:
        r"""$z_{\mathrm{semi}} = (1 - A_{ff}^T)^{-1}$ `source` ($=$ `source` with no
        feed-forward part), for one pattern."""
        del relaxation
        if self.feedforward is None:
            z = source
        else:
            n = x.shape[0]
            if self.feedforward.shape != (n, n):
                raise ValueError(
                    f"`SemiGradient(feedforward=...)` must be a ({n}, {n}) boolean "
                    f"mask for a network of {n} units, got shape "
                    f"{self.feedforward.shape}."
                )
            A = jax.jacfwd(lambda x_: model.drive(x_, I))(x)
            A_ff = jnp.where(self.feedforward, A, 0)
            z = jnp.linalg.solve(jnp.eye(n, dtype=A.dtype) - A_ff.T, source)
        return z, RESULTS.where(
            jnp.all(jnp.isfinite(z)),
            RESULTS.successful,
            RESULTS.adjoint_not_converged,
        )


SemiGradient.__init__.__doc__ = """**Arguments:**

- `feedforward`: optional boolean mask $(N, N)$ of the entries of
    $\\partial F/\\partial x$ through which the error still flows (row: the unit
    driven, column: the unit read), e.g. `net.feedforward_connections`. Default
    `None`: none, $z = \\bar x$.
"""
