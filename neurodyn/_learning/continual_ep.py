r"""Equilibrium propagation with continual weight updates (C-EP, Ernoult et al.
2020): the weights move during the nudged phase, integrated as the analog learning
system's ODE with another field."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._models.energy import EnergyNetwork
from .._relax import _relax, check_converged
from .._solvers.base import Relaxation
from .._validation import as_number
from .analog_method import AbstractAnalogMethod, Segment
from .full_system import integrate_terms, is_imex


class _NudgedField(eqx.Module):
    r"""The nudged phase with continual weight updates, on the state
    $(s, z, \theta)$ of the analog learning system with $z = (s - s^*_0)/\beta$."""

    beta: float | Float[Array, ""]

    def __call__(self, t, state, args):
        del t
        s, z, params = state
        static, I, T, eta = args
        model = eqx.combine(params, static)
        source = jax.vmap(model.training_source)(I, T)
        force = self.beta * model.error(s - self.beta * z, T)  # beta J(s*_0), held
        drive, pullback = eqx.filter_vjp(lambda m: jax.vmap(m.drive)(s, source), model)
        ds = (drive - s + force) / model.tau
        dz = ds / self.beta
        (velocity,) = pullback(dz)
        dparams = jax.tree.map(lambda v: jnp.asarray(eta, v.dtype) * v, velocity)
        return ds, dz, dparams


class ContinualEP(AbstractAnalogMethod):
    r"""Equilibrium propagation with continual weight updates (C-EP, Ernoult et al.
    2020), as a method of [`neurodyn.analog_learning`][] for an
    [`neurodyn.EnergyNetwork`][].

    Each segment first relaxes the free phase to $s^*_0$ with the weights held, then
    integrates the nudged phase of [`neurodyn.EquilibriumPropagation`][] while the
    weights follow the change of the energy's weight gradient along it:

    $$\tau\,\frac{ds}{dt} = -s + F(s) + \beta J(s^*_0),\qquad
      \frac{d\theta}{dt} = -\frac{\eta}{\beta}\,
      \frac{\partial^2 E}{\partial\theta\,\partial s}\,\frac{ds}{dt}
      = \eta\Big(\frac{\partial F}{\partial\theta}\Big)^T\frac{dz}{dt},
      \qquad z = \frac{s - s^*_0}{\beta},$$

    (using $F = s - \partial E/\partial s$). With the weights held, the nudged phase
    would add $\Delta\theta = -\frac\eta\beta\big(\partial_\theta E(s^*_\beta) -
    \partial_\theta E(s^*_0)\big)$: $-\eta$ times the one-sided EP estimate. As
    they move, the total change over a phase that settles is that plus $O(\eta^2)$,
    so C-EP's update equals EP's as $\eta \to 0$ (Ernoult et al.'s theorem), and
    the exact gradient step as $\eta, \beta \to 0$.

    Here $\eta$ is dimensionless (the weight change of one phase per unit
    estimate), unlike the rate of Pineda's system: the weights stop once the
    nudged phase settles, so `t1` must be several relaxation times. The run's `x`
    is $s$ (starting at $s^*_0$), its `z` the rescaled nudge $(s - s^*_0)/\beta$,
    which settles near the adjoint $z^*$ for small $\beta$ (the Jacobian of an
    energy network is symmetric). Under a [`neurodyn.PatternSchedule`][] every
    segment is one free and one nudged phase of its pattern: C-EP's per-example
    training. The nudging force is held at its free-phase value as in
    [`neurodyn.EquilibriumPropagation`][] (Ernoult et al. use the current state;
    the two differ by $O(\beta^2)$).

    The error estimate of a run is the step-size controller's `rtol`.

    ??? cite "References"

        ```bibtex
        @article{ernoult2020equilibrium,
          title={Equilibrium propagation with continual weight updates},
          author={Ernoult, Maxence and Grollier, Julie and Querlioz, Damien and
                  Bengio, Yoshua and Scellier, Benjamin},
          journal={arXiv preprint arXiv:2005.04168},
          year={2020}
        }
        ```
    """

    beta: float | Float[Array, ""] = 0.01
    solver: diffrax.AbstractAdaptiveSolver = diffrax.Tsit5()

    def __check_init__(self):
        as_number("beta", self.beta)
        if not isinstance(self.solver, diffrax.AbstractAdaptiveSolver) or is_imex(
            self.solver
        ):
            raise ValueError(
                "`solver` must be an adaptive, non-IMEX diffrax solver, such as "
                f"`diffrax.Tsit5()`; got {self.solver!r}."
            )

    def integrate(self, params, static, x0, I, T, eta, ts, rtol, atol, max_steps):
        model = eqx.combine(params, static)
        if not isinstance(model, EnergyNetwork):
            raise ValueError(
                "`nd.ContinualEP` needs a network with an energy, `nd.EnergyNetwork`; "
                f"got {type(model).__name__}."
            )
        source = jax.vmap(model.training_source)(I, T)
        relaxation = Relaxation(rtol=rtol, atol=atol)
        free = _relax(model, source, x0, relaxation)
        (s, z, saved), stats = integrate_terms(
            diffrax.ODETerm(_NudgedField(self.beta)),
            params,
            static,
            check_converged(free, free.x),
            I,
            T,
            eta,
            ts,
            self.solver,
            rtol,
            atol,
            max_steps,
        )
        return Segment(s, z, saved, stats, jnp.asarray(rtol, s.dtype))


ContinualEP.__init__.__doc__ = """**Arguments:**

- `beta`: the nudging strength $\\beta > 0$ (default 0.01).
- `solver`: the nudged phase's adaptive, non-IMEX diffrax solver (default
    `diffrax.Tsit5()`; one time scale, $\tau$: not stiff).
"""
