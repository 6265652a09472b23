r"""Two-time-scale integration of the analog learning system for small
$\epsilon = \eta\tau$: the fast activity and error signals are solved for, not
integrated, and the weights move along the slow manifold.

With $s = \eta t$ the system reads $\epsilon\, dx/ds = -x + F(x;\theta)$,
$\epsilon\, dz/ds = -z + A^T z + J(x)$, $d\theta/ds = v(x, z; \theta)$ with
$A = \partial F/\partial x$ and $v = (\partial F/\partial\theta)^T z$. After an
initial layer of a few $\tau$ the fast variables sit on the slow manifold
(Tikhonov, Fenichel):

$$x = x^* + \epsilon\, x_1 + O(\epsilon^2),\qquad
  x_1 = -(1 - A)^{-1}\, \frac{dx^*}{ds},\qquad
  \frac{dx^*}{ds} = (1 - A)^{-1}\, \frac{\partial F}{\partial\theta}\,v,$$

$$z = z^* + \epsilon\, z_1 + O(\epsilon^2),\qquad
  z_1 = (1 - A^T)^{-1}\Big[D_x\tilde z\,[x_1] - \frac{dz^*}{ds}\Big],$$

where $z^* = \tilde z(x^*, \theta)$ and $\tilde z(x, \theta)$ solves
$(1 - A(x,\theta)^T)\,\tilde z = J(x)$; both derivatives of $\tilde z$ are
$(1 - A^T)^{-1}$ applied to a Jacobian-vector product of
$(x, \theta) \mapsto A^T z^* + J(x)$. The weights then follow
$d\theta/dt = \eta\, v(x, z; \theta)$ at the corrected point: order 0 (the gradient
flow, $x = x^*$, $z = z^*$) is off by $O(\epsilon)$ in $\theta$, order 1 by
$O(\epsilon^2)$. The slow ODE does not see $\tau$, but it is stiff in the loss
curvature: an explicit solver needs about $\eta\,t_1\,\lambda_{\max}(\nabla^2 E)$
steps (docs/analog_solvers.md).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, PyTree

from .._dynamics import learning_velocities
from .._models.base import AbstractNetwork
from .._relax import relax_patterns
from .._results import RESULTS
from .._solvers.base import (
    SLOW_KRYLOV_RTOL,
    SLOW_LAYER_RTOL,
    SLOW_MAX_KRYLOV,
    AbstractSteadyStateSolver,
    Relaxation,
)
from .._validation import as_count, as_number
from .analog_method import AbstractAnalogMethod, Segment
from .fast_solves import LINEAR_CHAIN, Solves, linear_solve
from .full_system import STATS, FullSystem
from .gauss_newton import GaussNewtonResolvent
from .rosenbrock import LinearisedTerm, Ros2


class ManifoldVelocity(eqx.Module):
    """The slow vector field at one point of the slow manifold.

    - `x_dot`, `z_dot`: $dx^*/dt$, $dz^*/dt$ (how the fixed points move).
    - `theta_dot`: $d\\theta/dt$, with the first-order correction if asked for.
    - `x`, `z`: the fast variables on the manifold, $x^* + \\epsilon x_1$,
        $z^* + \\epsilon z_1$ (order 0: $x^*$, $z^*$).
    - `correction`: $\\|v_1 - v_0\\| / \\|v_0\\|$, the relative size of the
        first-order term in the weight velocity: $O(\\epsilon)$.
    - `settled`: every fixed point and linear solve converged.
    """

    x_dot: Float[Array, "p n"]
    z_dot: Float[Array, "p n"]
    theta_dot: PyTree
    x: Float[Array, "p n"]
    z: Float[Array, "p n"]
    correction: Float[Array, ""]
    settled: Bool[Array, ""]


def _norm(tree: PyTree) -> Float[Array, ""]:
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(tree)))


def manifold_velocity(
    model: AbstractNetwork,
    source: PyTree,
    T: Float[Array, "p n"],
    x_guess: Float[Array, "p n"],
    z_guess: Float[Array, "p n"],
    eta: Float[Array, ""],
    order: int,
    solves: Solves,
) -> ManifoldVelocity:
    r"""The slow field at the weights of `model` (module docstring), the fixed
    points warm-started from `x_guess`, `z_guess`."""
    tau = model.tau

    def forward_solve(b):  # from the Neumann series' first term
        return linear_solve(model, x, source, b, b, solves.linear, False)

    def adjoint_solve(b, y0):
        return linear_solve(model, x, source, b, y0, solves.linear, True)

    fp = relax_patterns(model, source, x_guess, solves.relaxation)
    x = fp.x
    J = model.error(x, T)
    z, ok_z = adjoint_solve(J, z_guess)
    _, _, v0 = learning_velocities(model, x, source, z, J)
    theta_dot = jax.tree.map(lambda v: eta.astype(v.dtype) * v, v0)
    _, b = eqx.filter_jvp(
        lambda m: jax.vmap(m.drive)(x, source), (model,), (theta_dot,)
    )
    x_dot, ok_x_dot = forward_solve(b)
    settled = jnp.all(fp.result == RESULTS.successful) & ok_z & ok_x_dot
    if order == 0:
        return ManifoldVelocity(
            x_dot, jnp.zeros_like(z), theta_dot, x, z, jnp.zeros((), x.dtype), settled
        )

    def adjoint_force(m, x_):  # A(x, theta)^T z* + J(x); z* held
        _, pullback = jax.vjp(lambda y: jax.vmap(m.drive)(y, source), x_)
        return pullback(z)[0] + m.error(x_, T)

    minus_x1, ok_x1 = forward_solve(tau * x_dot)
    dx = -minus_x1  # tau * eta * x_1: (A - 1) dx = tau dx*/dt
    _, r_flow = eqx.filter_jvp(adjoint_force, (model, x), (theta_dot, x_dot))
    _, r_shift = eqx.filter_jvp(lambda y: adjoint_force(model, y), (x,), (dx,))
    z_dot, ok_z_dot = adjoint_solve(r_flow, r_flow)
    forcing = r_shift - tau * z_dot
    dz, ok_dz = adjoint_solve(forcing, forcing)
    x1, z1 = x + dx, z + dz
    _, _, v1 = learning_velocities(model, x1, source, z1, model.error(x1, T))
    correction = _norm(jax.tree.map(jnp.subtract, v1, v0)) / _norm(v0)
    return ManifoldVelocity(
        x_dot,
        z_dot,
        jax.tree.map(lambda v: eta.astype(v.dtype) * v, v1),
        x1,
        z1,
        correction,
        settled & ok_x1 & ok_z_dot & ok_dz,
    )


_LOST = (
    "Slow-manifold analog learning: at some weights on the way the fast dynamics "
    "had no stable fixed point to follow (a relaxation or linear solve did not "
    "settle: learning may have crossed a bifurcation). Integrate the full system "
    "instead: `method=nd.FullSystem()`."
)


def slow_field(t, state, args):
    r"""$(\dot x^*, \dot z^*, \dot\theta)$ along the slow manifold; the state's
    $x$, $z$ only warm-start the fixed-point solves."""
    del t
    x, z, params = state
    static, I, T, eta, order, solves = args
    model = eqx.combine(params, static)
    source = jax.vmap(model.training_source)(I, T)
    velocity = manifold_velocity(model, source, T, x, z, eta, order, solves)
    theta_dot = eqx.error_if(velocity.theta_dot, ~velocity.settled, _LOST)
    return velocity.x_dot, velocity.z_dot, theta_dot


@eqx.filter_jit
def integrate_slow(
    params, static, x0, z0, I, T, eta, ts, order, solver, rtol, atol, max_steps,
    solves, resolvent=None,
):  # fmt: skip
    """Integrate the slow ODE from `ts[0]` (state on the manifold) over `ts`; with a
    `resolvent` (`gauss_newton.GaussNewtonResolvent`), linearly implicitly by
    `rosenbrock.Ros2`, stepping to every save time."""
    controller = diffrax.PIDController(rtol=rtol, atol=atol, norm=_weights_norm)
    if resolvent is None:
        term = diffrax.ODETerm(slow_field)
    else:
        term = LinearisedTerm(slow_field, resolvent)
        solver = Ros2()
        controller = diffrax.ClipStepSizeController(controller, step_ts=ts)
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=(x0, z0, params),
        args=(static, I, T, eta, order, solves),
        stepsize_controller=controller,
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=max_steps,
    )
    return sol.ys, {name: sol.stats[name] for name in STATS}


def _weights_norm(error):
    """The step-size controller's error norm on the parameters only: the state's
    $x$, $z$ are warm starts, recomputed on the manifold at every evaluation."""
    return optx.rms_norm(error[2])


@eqx.filter_jit
def manifold_points(params, static, x, z, I, T, eta, order, solves):
    """The fast variables on the manifold (to `order`) and the relative size of the
    first-order term of the weight velocity (zero at order 0) at saved weights
    (leading K axis on `params`, `x`, `z`)."""

    def one(p, x_, z_):
        model = eqx.combine(p, static)
        source = jax.vmap(model.training_source)(I, T)
        v = manifold_velocity(model, source, T, x_, z_, eta, order, solves)
        return v.x, v.z, v.correction

    return jax.lax.map(lambda a: one(*a), (params, x, z))


class SlowManifold(AbstractAnalogMethod):
    r"""Integrate the analog learning system in two time scales (module docstring
    of `neurodyn._learning.slow_manifold`): the full system over the initial layer
    $[t_0, t_0 + \text{layer}\,\tau]$, where $x$ and $z$ settle, then the weights
    alone, $d\theta/dt = \eta\, v(x, z;\theta)$ with $x$, $z$ on the slow manifold
    from the steady-state solvers (warm-started from the previous step) and, for
    `order=1`, the first-order correction in $\epsilon = \eta\tau$.

    The error of $\theta$ is $O(\epsilon^{\text{order}+1})$ relative to the full
    system; the run's error estimate is $c^{\text{order}+1} + \text{rtol}_s$:
    the measured relative size $c$ of the first-order term in the weight velocity
    ($c = O(\epsilon)$) raised to the power order + 1 (the modelling error), plus
    the slow ODE's controller tolerance $\text{rtol}_s$ (`slow_tolerances`; the
    integrator's error, which dominates for the implicit integrator at a loose
    `slow_rtol`). Work does not grow with $1/\epsilon$: a step of the slow ODE
    follows how fast the weights change.

    - `order`: 0 (the gradient flow, $x = x^*$, $z = z^*$) or 1 (default).
    - `layer`: the length of the initial layer in units of $\tau$ (default 20:
        transients decay like $e^{-\mu t/\tau}$, $\mu$ the slowest relaxation rate).
    - `solver`: the adaptive diffrax solver of the slow ODE and of the layer,
        default `diffrax.Tsit5()`.
    - `steady_state`: the steady-state solver for $x^*$ (default: neurodyn's
        default chain), run at a hundredth of the run's tolerances; the linear
        systems ($z^*$ and the correction) use the plain iteration with Anderson
        acceleration as its fallback (`Solves`).
    - `implicit`: integrate the slow ODE linearly implicitly, by the Rosenbrock-W
        method ROS2 (`neurodyn._learning.rosenbrock`, order 2) with the
        Gauss-Newton matrix of the loss as its Jacobian
        (`neurodyn._learning.gauss_newton`): its steps are not capped by the
        loss curvature, as an explicit solver's are. Default False (`solver`).
    - `krylov_rtol`, `max_krylov`: the conjugate-gradient solves of the implicit
        steps (relative residual, most products; a step whose solve fails is
        rejected and retried shorter).
    - `slow_rtol`: the slow ODE's step-size controller's relative tolerance
        (`atol` scaled alike); default the run's `rtol`. An order-2 integrator
        needs about $1/\sqrt{\text{rtol}}$ steps, so the implicit one is meant
        for loose values such as 1e-3 (measurements in docs/analog_solvers.md).
    """

    order: int = eqx.field(static=True, default=1)
    layer: float = eqx.field(static=True, default=20.0)
    solver: diffrax.AbstractAdaptiveSolver = diffrax.Tsit5()
    steady_state: AbstractSteadyStateSolver | None = None
    implicit: bool = eqx.field(static=True, default=False)
    krylov_rtol: float = SLOW_KRYLOV_RTOL
    slow_rtol: float | None = None
    max_krylov: int = eqx.field(static=True, default=SLOW_MAX_KRYLOV)

    def __check_init__(self):
        if as_count("order", self.order, minimum=0) > 1:
            raise ValueError(f"`order` must be 0 or 1, got {self.order!r}.")
        as_number("layer", self.layer)
        as_number("krylov_rtol", self.krylov_rtol)
        as_count("max_krylov", self.max_krylov)
        if self.slow_rtol is not None:
            as_number("slow_rtol", self.slow_rtol)
        FullSystem(self.solver)  # same check of `solver`

    def solves(self, dtype, rtol: float, atol: float) -> Solves:
        r"""The settings of the solves inside the slow field: the fixed points at a
        hundredth of the run's tolerances (floored at 50 and 5 machine epsilons of
        `dtype`); the linear systems at the same relative tolerance and no absolute
        one to speak of (5 machine epsilons): the right-hand sides of the
        correction's systems are $O(\epsilon)$ small, so an absolute tolerance on
        the scale of the states would leave them inaccurate."""
        tiny = float(jnp.finfo(dtype).eps)
        r, a = max(rtol / 100, 50 * tiny), max(atol / 100, 5 * tiny)
        return Solves(
            Relaxation(self.steady_state, rtol=r, atol=a),
            Relaxation(LINEAR_CHAIN, rtol=r, atol=5 * tiny, attractors_only=False),
        )

    def slow_tolerances(self, rtol: float, atol: float) -> tuple[float, float]:
        """The slow ODE's step-size controller tolerances: the run's, or `slow_rtol`
        with `atol` scaled alike."""
        if self.slow_rtol is None:
            return rtol, atol
        return self.slow_rtol, atol * self.slow_rtol / rtol

    def resolvent(self, solves: Solves, dtype) -> GaussNewtonResolvent | None:
        """The linear solves of the implicit slow integrator (None if explicit):
        conjugate gradients to `krylov_rtol`, the solves inside each Gauss-Newton
        product ten times tighter."""
        if not self.implicit:
            return None
        tiny = float(jnp.finfo(dtype).eps)
        inner = max(self.krylov_rtol / 10, 50 * tiny)
        linear = Relaxation(
            LINEAR_CHAIN, rtol=inner, atol=5 * tiny, attractors_only=False
        )
        return GaussNewtonResolvent(
            solves.relaxation, linear, self.krylov_rtol, self.max_krylov
        )

    def integrate(self, params, static, x0, I, T, eta, ts, rtol, atol, max_steps):
        tau = eqx.combine(params, static).tau
        full = FullSystem(self.solver)
        t_layer = float(ts[0]) + self.layer * tau
        if t_layer >= float(ts[-1]):
            return full.integrate(
                params, static, x0, I, T, eta, ts, rtol, atol, max_steps
            )
        # The layer moves the weights by O(eps) of the whole change, so its
        # trajectory needs a relative accuracy of only about rtol / eps: a thousand
        # times the tolerances (at most 1e-3) serves eps <~ 1e-3.
        loose = max(1.0, min(SLOW_LAYER_RTOL / rtol, 1e3))
        in_layer = ts < t_layer
        first = full.integrate(
            params,
            static,
            x0,
            I,
            T,
            eta,
            jnp.append(ts[in_layer], t_layer),
            rtol * loose,
            atol * loose,
            max_steps,
        )
        slow_ts = jnp.unique(jnp.append(t_layer, ts[~in_layer]))
        solves = self.solves(x0.dtype, rtol, atol)
        x, z, p = jax.tree.map(lambda leaf: leaf[-1], (first.x, first.z, first.params))
        # Traced tolerances: another `slow_rtol` does not recompile the slow phase.
        slow_rtol, slow_atol = (
            jnp.asarray(tol, x0.dtype) for tol in self.slow_tolerances(rtol, atol)
        )
        (x, z, p), stats = integrate_slow(
            p, static, x, z, I, T, eta, slow_ts, self.order, self.solver,
            slow_rtol, slow_atol, max_steps, solves, self.resolvent(solves, x0.dtype),
        )  # fmt: skip
        x, z, correction = manifold_points(
            p, static, x, z, I, T, eta, self.order, solves
        )
        # The error estimate: the first-order term's size where the slow phase
        # starts and ends, whatever the save times (an order-1 run has it already).
        ends = jnp.array([0, -1])
        if self.order == 1:
            correction = correction[ends]
        else:
            p_, x_, z_ = jax.tree.map(lambda leaf: leaf[ends], (p, x, z))
            _, _, correction = manifold_points(p_, static, x_, z_, I, T, eta, 1, solves)
        keep = jnp.isin(slow_ts, ts)
        x, z, p = jax.tree.map(lambda leaf: leaf[keep], (x, z, p))
        joined = jax.tree.map(
            lambda a, b: jnp.concatenate([a[:-1], b]),
            (first.x, first.z, first.params),
            (x, z, p),
        )
        stats = {name: first.stats[name] + stats[name] for name in STATS}
        # The modelling term plus, as for the full system, the controller's rtol.
        estimate = jnp.max(correction) ** (self.order + 1) + slow_rtol
        return Segment(*joined, stats, estimate)
