"""The entries of `benchmarks/peers.py`: each builds, for a tolerance, one jitted
gradient of the peers problem, by a peer library, by the plain-loop floor or by
neurodyn."""

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import diffrax
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from _peers_problem import X0, drive, rms
from _peers_report import DEFAULT, FLOOR

import neurodyn as nd


try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import jaxopt
    JAXOPT_ERROR = None
except Exception as error:  # reported in the table, the rest still runs
    jaxopt = None
    JAXOPT_ERROR = f"{type(error).__name__}: {error}"


# Cap on iterations of the iterative peers and the floor; the converging ones need
# at most a few hundred here.
MAX_ITERATIONS = 1000
# Cap on the ODE peers' steps: ample (they take at most a few hundred), and it sets
# the checkpoints of backprop through diffrax.
MAX_ODE_STEPS = 4096
# Horizon of the ODE relaxations: neurodyn's default of 1000 time constants.
T_MAX = 1000.0


# ----------------------------------------------------------------------------------
# Entries: each builds, for a tolerance, a function (W, I, T) -> (E, dE/dW,
# converged, iterations) where iterations = [forward, adjoint] (NaN if unknown).


def _iterations(forward, adjoint=None):
    forward = jnp.mean(jnp.asarray(forward, jnp.float32))
    adjoint = jnp.nan if adjoint is None else jnp.asarray(adjoint, jnp.float32)
    return jnp.stack([forward, jnp.asarray(adjoint, jnp.float32)])


def _batched_gradient(fixed_point):
    """Turn a single-pattern `fixed_point(W, i) -> (x, ok, steps)` into the
    batched `(W, I, T) -> (E, dE/dW, converged, iterations)`."""

    def fn(W, I, T):
        def total(W):
            x, ok, steps = jax.vmap(lambda i: fixed_point(W, i))(I)
            return 0.5 * jnp.sum((T - x) ** 2), (ok, steps)

        (E, (ok, steps)), G = jax.value_and_grad(total, has_aux=True)(W)
        return E, G, jnp.all(ok), _iterations(steps)

    return fn


def _ode(tol, adjoint):
    def fixed_point(W, i):
        def field(t, y, args):
            del t
            W_, i_ = args
            return drive(W_, y, i_) - y

        def settled(t, y, args, **kwargs):
            del kwargs
            return rms(field(t, y, args)) < tol

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            t0=0.0,
            t1=T_MAX,
            dt0=None,
            y0=jnp.full_like(i, X0),
            args=(W, i),
            stepsize_controller=diffrax.PIDController(rtol=0.1 * tol, atol=0.1 * tol),
            event=diffrax.Event(settled),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=MAX_ODE_STEPS,
            adjoint=adjoint,
            throw=False,
        )
        ok = sol.result == diffrax.RESULTS.event_occurred
        return sol.ys[-1], ok, sol.stats["num_steps"]

    return _batched_gradient(fixed_point)


def diffrax_backprop(tol):
    return _ode(tol, diffrax.RecursiveCheckpointAdjoint())


def diffrax_implicit(tol):
    return _ode(tol, diffrax.ImplicitAdjoint())


def _optimistix(tol, linear_solver):
    solver = optx.FixedPointIteration(rtol=0.0, atol=tol, norm=optx.rms_norm)

    def fixed_point(W, i):
        sol = optx.fixed_point(
            lambda y, args: drive(args[0], y, args[1]),
            solver,
            jnp.full_like(i, X0),
            args=(W, i),
            max_steps=MAX_ITERATIONS,
            adjoint=optx.ImplicitAdjoint(linear_solver),
            throw=False,
        )
        return sol.value, sol.result == optx.RESULTS.successful, sol.stats["num_steps"]

    return _batched_gradient(fixed_point)


def optimistix_lu(tol):
    return _optimistix(tol, lx.LU())


def gmres(tol):
    """lineax GMRES to the common absolute RMS tolerance."""
    return lx.GMRES(rtol=0.0, atol=tol, norm=optx.rms_norm)


def optimistix_gmres(tol):
    return _optimistix(tol, gmres(tol))


def _jaxopt(tol, solver_class, **options):
    def fixed_point(W, i):
        # jaxopt's error is the Euclidean norm of F(x) - x: RMS tol times sqrt(N).
        l2_tol = tol * math.sqrt(i.shape[-1])
        solver = solver_class(
            fixed_point_fun=lambda x, W_, i_: drive(W_, x, i_),
            tol=l2_tol,
            maxiter=MAX_ITERATIONS,
            implicit_diff=True,
            # jax.scipy's GMRES; "incremental" stops as soon as the residual is
            # small enough ("batched", the default, ran 2-3x slower here).
            implicit_diff_solve=functools.partial(
                jaxopt.linear_solve.solve_gmres,
                tol=0.0,
                atol=l2_tol,
                solve_method="incremental",
            ),
            **options,
        )
        params, state = solver.run(jnp.full_like(i, X0), W, i)
        return params, state.error <= l2_tol, state.iter_num

    return _batched_gradient(fixed_point)


def jaxopt_fixed_point(tol):
    return _jaxopt(tol, jaxopt.FixedPointIteration)


def jaxopt_anderson(tol):
    return _jaxopt(tol, jaxopt.AndersonAcceleration)


def _floor_running(tol):
    """The floor's loop condition: residual above tol, budget left."""

    def cond(carry):
        *_, k, r = carry
        return (r > tol) & (k < MAX_ITERATIONS)

    return cond


def _floor_relax(W, I, tol):
    """The floor's forward loop over the whole batch. It carries X and
    S = g(W X), so that F(X) = S + I and the slope at the returned X come without
    another product."""

    def forward(carry):
        _, S, k, _ = carry
        X = S + I
        S_new = jax.nn.sigmoid(X @ W.T)
        return X, S_new, k + 1, jnp.max(rms(S_new + I - X))

    X_start = jnp.full_like(I, X0)
    S_start = jax.nn.sigmoid(X_start @ W.T)
    r_start = jnp.max(rms(S_start + I - X_start))
    return jax.lax.while_loop(
        _floor_running(tol), forward, (X_start, S_start, jnp.array(0), r_start)
    )


def plain_floor(tol):
    """The cheapest gradient: plain iteration forward and adjoint, whole batch, one
    matrix product per iteration and one for dE/dW."""

    def fn(W, I, T):
        X, S, k_forward, r_forward = _floor_relax(W, I, tol)
        slope = S * (1 - S)
        J = X - T

        def backward(carry):
            Z, k, _ = carry
            Z_new = (slope * Z) @ W + J
            return Z_new, k + 1, jnp.max(rms(Z_new - Z))

        inf = jnp.array(jnp.inf, I.dtype)
        Z, k_adjoint, r_adjoint = jax.lax.while_loop(
            _floor_running(tol), backward, (J, jnp.array(0), inf)
        )
        E = 0.5 * jnp.sum((T - X) ** 2)
        G = (slope * Z).T @ X
        ok = (r_forward <= tol) & (r_adjoint <= tol)
        return E, G, ok, _iterations(k_forward, k_adjoint)

    return fn


def floor_forward(tol):
    """The floor's forward loop alone: its state and iterations."""

    def forward(W, I):
        X, _, k, _ = _floor_relax(W, I, tol)
        return X, k

    return forward


def nd_relaxation(tol: float, solver=None) -> nd.Relaxation:
    """neurodyn's tests are RMS < atol + rtol * size: absolute with a tiny rtol."""
    return nd.Relaxation(solver, atol=tol, rtol=1e-3 * tol)


def neurodyn_entry(**options):
    """`nd.value_and_grad(net, I, T, **options)` at the common tolerance; options
    may be functions of tol."""

    def build(tol):
        resolved = {k: v(tol) if callable(v) else v for k, v in options.items()}
        relaxation = nd_relaxation(tol, resolved.pop("solver", None))

        def fn(W, I, T):
            net = nd.FirstOrderNetwork(W)
            E, grads = nd.value_and_grad(net, I, T, relaxation=relaxation, **resolved)
            # neurodyn raises when a pattern does not converge.
            return E, grads.weights, jnp.array(True), _iterations(jnp.nan)

        return fn

    return build


def neurodyn_forward(**options):
    """`nd.relax(net, I, **options)` at the common tolerance: the forward
    relaxation of a neurodyn entry, with its steps (value_and_grad does not
    return them)."""

    def build(tol):
        resolved = {k: v(tol) if callable(v) else v for k, v in options.items()}
        relaxation = nd_relaxation(tol, resolved.pop("solver", None))

        def forward(W, I):
            net = nd.FirstOrderNetwork(W)
            fp = nd.relax(net, I, relaxation=relaxation, **resolved)
            return fp.x, fp.num_steps

        return forward

    return build


@dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[[float], Callable]
    # Forms and factorises an N x N matrix per pattern: time ~ N^3 (else ~ N^2).
    dense: bool = False
    neurodyn: bool = False
    # The forward relaxation alone, built like `build` (neurodyn's and the
    # floor's), and a key shared by the entries with the same forward (timed once).
    forward: Callable[[float], Callable] | None = None
    forward_key: str | None = None
    unavailable: str | None = None
    extra: bool = False  # run only with --extra


PEERS = [
    Entry("diffrax backprop (RecursiveCheckpoint)", diffrax_backprop),
    Entry("diffrax ImplicitAdjoint (LU)", diffrax_implicit, dense=True),
    Entry("optimistix FixedPoint + LU", optimistix_lu, dense=True),
    Entry("optimistix FixedPoint + GMRES", optimistix_gmres),
    Entry(
        "jaxopt FixedPointIteration",
        jaxopt_fixed_point,
        unavailable=JAXOPT_ERROR and f"jaxopt unavailable: {JAXOPT_ERROR}",
    ),
    Entry(
        "jaxopt Anderson",
        jaxopt_anderson,
        unavailable=JAXOPT_ERROR and f"jaxopt unavailable: {JAXOPT_ERROR}",
    ),
    Entry(FLOOR, plain_floor, forward=floor_forward, forward_key=FLOOR),
]


def neurodyn_entries() -> list[Entry]:
    """neurodyn's default, then per steady-state solver `RecurrentBackprop` (the
    adjoint by the same solver) and, for some, `ImplicitDiff(GMRES)`; entries marked
    extra run only with `--extra`. Solvers this neurodyn lacks are left out."""

    def entry(name, solver=None, extra=False, **options):
        if solver is not None:
            options["solver"] = solver
        return Entry(
            name,
            neurodyn_entry(**options),
            neurodyn=True,
            forward=neurodyn_forward(
                **({"solver": solver} if solver is not None else {})
            ),
            forward_key=name.split(" + ")[0],
            extra=extra,
        )

    implicit_gmres = {"method": lambda tol: nd.ImplicitDiff(gmres(tol))}
    recurrent = {"method": nd.RecurrentBackprop()}
    entries = [
        entry(DEFAULT),
        entry("neurodyn default + ImplicitDiff(GMRES)", extra=True, **implicit_gmres),
    ]
    # (class name, settings, [(method, extra), ...])
    solvers = [
        ("ODERelaxation", {}, [(recurrent, False)]),
        ("FixedPointIteration", {}, [(recurrent, False)]),
        ("FixedPointIteration", {"damping": 0.3}, [(recurrent, False)]),
        ("Anderson", {}, [(recurrent, False), (implicit_gmres, False)]),
        ("NewtonKrylov", {}, [(recurrent, True), (implicit_gmres, False)]),
    ]
    steady_state = getattr(nd, "AbstractSteadyStateSolver", None)
    for name, settings, methods in solvers:
        cls = getattr(nd, name, None)
        if steady_state is None or cls is None or not issubclass(cls, steady_state):
            continue
        label = name + (
            "(" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")"
            if settings
            else ""
        )
        for method, extra in methods:
            kind = "ImplicitDiff(GMRES)" if method is implicit_gmres else "RB"
            entries.append(
                entry(f"nd {label} + {kind}", cls(**settings), extra, **method)
            )
    return entries
