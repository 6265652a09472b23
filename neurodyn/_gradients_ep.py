r"""Equilibrium propagation: the gradient from a second, nudged relaxation.

For a network that descends an energy, $\tau\, ds/dt = -\partial E/\partial s$, and a
loss $C(s^*)$ of its fixed point, Scellier & Bengio's theorem gives

$$\frac{dC(s^*_0)}{d\theta} = \lim_{\beta\to0}\frac1\beta\Big(
  \frac{\partial E}{\partial\theta}(s^*_\beta) -
  \frac{\partial E}{\partial\theta}(s^*_0)\Big),$$

where $s^*_\beta$ is the fixed point of the *nudged* dynamics
$\tau\, ds/dt = -\partial E/\partial s - \beta\, \partial C/\partial s$. No adjoint is
needed: the same dynamics relax twice, and the weight update is the difference of
two local (Hebbian, for a Hopfield energy: $\rho_i\rho_j$) terms.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ._batch import batched
from ._gradients import AbstractGradientMethod
from ._implicit import stop_gradients
from ._models.base import AbstractNetwork
from ._models.energy import EnergyNetwork
from ._relax import relax_patterns
from ._results import RESULTS, error_if_any, select
from ._solvers.base import Outcome, Relaxation
from ._validation import as_number


class EquilibriumPropagation(AbstractGradientMethod):
    r"""Equilibrium propagation (Scellier & Bengio 2017) for an
    [`neurodyn.EnergyNetwork`][].

    The free phase relaxes to $s^*_0$. For the cotangent
    $\bar s = \partial C/\partial s^*$ (for $C = \tfrac12\sum_O (T - s^*)^2$,
    $\bar s = -J$) the nudged phase relaxes, from $s^*_0$,

    $$\tau\,\frac{ds}{dt} = -s + F(s) - \beta\,\bar s$$

    to $s^*_\beta$, and the gradient estimate is the contrastive update

    $$\widehat{\nabla_\theta C} = \frac1\beta\Big(\frac{\partial E}{\partial\theta}
      (s^*_\beta) - \frac{\partial E}{\partial\theta}(s^*_0)\Big)
      \qquad\text{(one-sided, error } O(\beta)\text{)},$$

    or with `symmetric=True` (Laborieux et al. 2021)
    $\frac1{2\beta}\big(\partial_\theta E(s^*_\beta) - \partial_\theta
    E(s^*_{-\beta})\big)$, error $O(\beta^2)$. The same formula with $\partial E/
    \partial I$ gives the gradient with respect to the source.

    The nudging force is the loss gradient at the free fixed point, $\beta\bar s$,
    held constant during the nudged phase (the method sees the loss only through
    $\bar s$, so any loss works). Scellier & Bengio nudge by
    $\beta\,\partial C/\partial s$ at the current state; for the squared error the
    two differ by $\beta (s - s^*_0)_O = O(\beta^2)$, which changes neither limit
    nor the orders above.

    Both phases use the forward relaxation's solver and tolerances: the difference
    $s^*_\beta - s^*_0$ is $O(\beta)$, so the tolerance must be well below
    $\beta\,\|\bar s\|$ (e.g. `rtol=1e-10` for $\beta = 10^{-3}$) or the estimate is
    dominated by relaxation error.

    ??? cite "References"

        ```bibtex
        @article{scellier2017equilibrium,
          title={Equilibrium propagation: bridging the gap between energy-based
                 models and backpropagation},
          author={Scellier, Benjamin and Bengio, Yoshua},
          journal={Frontiers in Computational Neuroscience},
          volume={11},
          pages={24},
          year={2017}
        }
        @inproceedings{laborieux2021scaling,
          title={Scaling equilibrium propagation to deep ConvNets by drastically
                 reducing its gradient estimator bias},
          author={Laborieux, Axel and Ernoult, Maxence and Scellier, Benjamin and
                  Bengio, Yoshua and Grollier, Julie and Querlioz, Damien},
          journal={Frontiers in Neuroscience},
          year={2021}
        }
        ```
    """

    beta: float | Float[Array, ""] = 0.01
    symmetric: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        as_number("beta", self.beta)
        if not isinstance(self.symmetric, bool):
            raise TypeError(
                f"`symmetric` must be True or False, got {self.symmetric!r}."
            )

    def fixed_point(self, model, I, x0, relaxation):
        if not isinstance(model, EnergyNetwork):
            raise ValueError(
                "`nd.EquilibriumPropagation` needs a network with an energy, "
                "`nd.EnergyNetwork` (its dynamics must descend the energy for the "
                f"nudged phase to give the gradient); got {type(model).__name__}."
            )
        fp = relax_patterns(
            stop_gradients(model), stop_gradients(I), stop_gradients(x0), relaxation
        )
        return _equilibrium_fixed_point((model, I), fp, self, relaxation)


def energy_gradient(
    model: EnergyNetwork, I: Float[Array, "*p n"], s: Float[Array, "*p n"]
) -> tuple[PyTree, PyTree]:
    r"""$\big(\partial E/\partial\theta,\ \partial E/\partial I\big)$ at the states
    $s$, summed over the patterns of a batch."""

    def total(model_and_input):
        m, i = model_and_input
        return jnp.sum(batched(m.energy, s, i))

    return eqx.filter_grad(total)((model, I))


def nudged(
    model: AbstractNetwork,
    I: Float[Array, "*p n"],
    start: Float[Array, "*p n"],
    force: Float[Array, "*p n"],
    relaxation: Relaxation,
) -> Outcome:
    r"""The fixed point of $\tau\, ds/dt = -s + F(s) + $ `force`, from `start`."""

    def one(s0, i, f):
        return relaxation.solve(
            lambda s: (model.drive(s, i) - s + f) / model.tau, s0, model.tau
        )

    return batched(one, start, I, force)


@eqx.filter_custom_vjp
def _equilibrium_fixed_point(model_and_input, fp, method, relaxation):
    """The free phase `fp` (relaxed, not differentiated) as a function of
    `(model, I)`, whose backward pass is the nudged phase."""
    del model_and_input, method, relaxation
    return fp


@_equilibrium_fixed_point.def_fwd
def _equilibrium_fixed_point_fwd(perturbed, model_and_input, fp, method, relaxation):
    del perturbed, model_and_input, method, relaxation
    return fp, None


@_equilibrium_fixed_point.def_bwd
def _equilibrium_fixed_point_bwd(
    residuals, cotangent, perturbed, model_and_input, fp, method, relaxation
):
    del residuals, perturbed
    model, I = model_and_input
    s_free = fp.x
    s_bar = jnp.zeros_like(s_free) if cotangent.x is None else cotangent.x
    s_bar = s_bar.astype(s_free.dtype)
    beta = method.beta
    plus = nudged(model, I, s_free, -beta * s_bar, relaxation)
    if method.symmetric:
        minus = nudged(model, I, s_free, beta * s_bar, relaxation)
        low, span = minus.y, 2 * beta
        settled = plus.result == RESULTS.successful
        result = select(settled, minus.result, plus.result)
    else:
        low, span, result = s_free, beta, plus.result
    high = energy_gradient(model, I, plus.y)
    base = energy_gradient(model, I, low)
    estimate = jax.tree.map(lambda a, b: (a - b) / span, high, base)
    failed = fp.converged & (result != RESULTS.successful)
    return error_if_any(estimate, result, failed)
