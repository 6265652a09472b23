r"""The analog learning system integrated as it stands: activity, error signal and
weights of every pattern in one ODE (Pineda eqs 1, 13, 17)."""

import typing

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._dynamics import learning_velocities
from .analog_method import AbstractAnalogMethod, Segment


def learning_field(t, state, args):
    r"""The coupled vector field of patterns $a$ and parameters $\theta$:

    $$\tau\dot x_a = -x_a + F(x_a),\quad
      \tau\dot z_a = -z_a + (\partial F/\partial x)^T z_a + J_a,\quad
      \dot\theta = \eta \sum_a (\partial F/\partial\theta)^T z_a,$$

    with $J_a = (T_a - x_a)$ on output units. For a first-order network the last is
    $\dot W = \eta \sum_a y_a x_a^T$, $y_a = g'(u_a)\odot z_a$ (eqs 13, 17). All
    three come from one pullback of the batched drive
    ([`neurodyn.learning_velocities`][]).
    """
    del t
    x, z, params = state
    static, I, T, eta = args
    model = eqx.combine(params, static)
    source = jax.vmap(model.training_source)(I, T)
    dx, dz, velocity = learning_velocities(model, x, source, z, model.error(x, T))
    dparams = jax.tree.map(lambda v: jnp.asarray(eta, v.dtype) * v, velocity)
    return dx, dz, dparams


def _fast_field(t, state, args):
    """The relaxation of activity and error signals, weights held: the stiff part."""
    dx, dz, dparams = learning_field(t, state, args)
    return dx, dz, jax.tree.map(jnp.zeros_like, dparams)


def _slow_field(t, state, args):
    """The weight dynamics alone, activity and error signals held: the slow part."""
    dx, dz, dparams = learning_field(t, state, args)
    return jnp.zeros_like(dx), jnp.zeros_like(dz), dparams


def is_imex(solver: diffrax.AbstractSolver) -> bool:
    """Whether `solver` integrates `MultiTerm(explicit_term, implicit_term)`, as
    diffrax's IMEX solvers `KenCarp3`, `KenCarp4`, `KenCarp5` and `Sil3` do."""
    return typing.get_origin(solver.term_structure) is diffrax.MultiTerm


def learning_terms(solver: diffrax.AbstractSolver) -> diffrax.AbstractTerm:
    r"""The analog learning system as diffrax terms for `solver`: one `ODETerm` of
    `learning_field`, or, for an IMEX solver, the weight dynamics as the explicit term
    and the relaxation of $x$, $z$ (time scale $\tau$, stiff when $\eta\tau$ is small)
    as the implicit term."""
    if is_imex(solver):
        return diffrax.MultiTerm(
            diffrax.ODETerm(_slow_field), diffrax.ODETerm(_fast_field)
        )
    return diffrax.ODETerm(learning_field)


# The solver statistics a run reports.
STATS = ("num_steps", "num_accepted_steps", "num_rejected_steps")


@eqx.filter_jit
def integrate_terms(
    terms, params, static, x0, I, T, eta, ts, solver, rtol, atol, max_steps
):
    """Solve `terms` (a field of the state $(x, z, \theta)$ and the args
    `(static, I, T, eta)`) from $(x_0, 0, \theta)$, saving at `ts`."""
    y0 = (x0, jnp.zeros_like(x0), params)
    sol = diffrax.diffeqsolve(
        terms,
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        args=(static, I, T, eta),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=max_steps,
    )
    return sol.ys, {name: sol.stats[name] for name in STATS}


class FullSystem(AbstractAnalogMethod):
    r"""Integrate $(x_a, z_a, \theta)$ as one ODE with an adaptive diffrax solver: no
    modelling error, whatever the time scales. The step of an explicit solver is
    capped by the fast relaxation ($\approx 3\tau$ for Tsit5), so the work grows
    like $t_1/\tau$; for $\epsilon = \eta\tau \ll 1$ prefer
    [`neurodyn.SlowManifold`][].

    - `solver`: an adaptive diffrax solver, default `diffrax.Tsit5()`. An IMEX
        solver (`diffrax.KenCarp4()`, ...) gets the weight dynamics as its explicit
        term and the relaxation of $x$, $z$ as its implicit term. Implicit solvers
        form a dense Jacobian of the whole state ($2PN$ + parameters numbers): for
        small systems only.

    The error estimate of a run is the step-size controller's `rtol`.
    """

    solver: diffrax.AbstractAdaptiveSolver = diffrax.Tsit5()

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(
                "`solver` must be an adaptive diffrax solver, such as "
                "`diffrax.Tsit5()`, `diffrax.Kvaerno5()` or `diffrax.KenCarp4()`; "
                f"got {self.solver!r}."
            )

    def integrate(self, params, static, x0, I, T, eta, ts, rtol, atol, max_steps):
        terms = learning_terms(self.solver)
        (x, z, saved), stats = integrate_terms(
            terms, params, static, x0, I, T, eta, ts, self.solver, rtol, atol, max_steps
        )
        return Segment(x, z, saved, stats, jnp.asarray(rtol, x.dtype))
