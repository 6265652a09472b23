r"""Stability along learning: the leading eigenvalue of every pattern's fixed point
as the weights change, and the first update (or time) at which a fixed point loses
stability.

Each pattern's fixed point is *tracked* by continuation: relaxed once at the first
model, then carried from model $\theta$ to the next, $\theta + \Delta\theta$, by a
predictor and a corrector. The predictor is the branch's tangent, the implicit
function theorem in forward mode (`neurodyn._implicit`, the rule under every adjoint
gradient and the Hessians),

$$x \leftarrow x + (1 - A)^{-1}\,\frac{\partial F}{\partial\theta}\Delta\theta,
  \qquad A = \partial F/\partial x,$$

and the corrector is Newton's method on $R(x) = F(x) - x = 0$ with the same operator,

$$x \leftarrow x + (1 - A)^{-1} R(x),$$

both solved by LU (`lineax`). Newton converges to unstable fixed points as
well, so the leading eigenvalue $\lambda_1$ of $L = (-1 + \partial F/\partial x)/\tau$
is followed continuously through $\mathrm{Re}\,\lambda_1 = 0$. Stability is lost where
$\mathrm{Re}\,\lambda_1$ turns positive, by a real eigenvalue (saddle-node; for a
linear network $1 - W$ turns singular and $x^*$ passes through infinity) or a complex
pair (Hopf: the relaxation starts to oscillate), or where the branch ends (a fold:
Newton finds no fixed point near the previous one).
"""

import dataclasses
import warnings
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Complex, Float, PyTree, Real

from .._dynamics import relaxation_operator
from .._gradients import ImplicitDiff
from .._implicit import implicit_state
from .._learning.analog import AnalogRun
from .._learning.train import History
from .._models.base import AbstractNetwork
from .._relax import as_relaxation, initial_state, relax_patterns
from .._solvers.base import ANALYSIS_ATOL, ANALYSIS_RTOL, Relaxation
from .._validation import (
    as_count,
    as_float_array,
    as_number,
    as_patterns,
    as_start,
    check_finite,
)
from .spectra import _sorted, jacobian


# The first relaxation of a tracked branch: the analyses' tighter tolerances.
ANALYSIS_SETTINGS = dict(rtol=ANALYSIS_RTOL, atol=ANALYSIS_ATOL)


def _newton(model, I, x, iterations):
    r"""`iterations` Newton steps on $F(x) - x = 0$; the state and its residual."""

    def step(_, x):
        operator = relaxation_operator(model, x, I)  # 1 - A
        dx = lx.linear_solve(operator, model.drive(x, I) - x, lx.LU(), throw=False)
        return jnp.where(jnp.all(jnp.isfinite(dx.value)), x + dx.value, x)

    x = jax.lax.fori_loop(0, iterations, step, x)
    return x, jnp.max(jnp.abs(model.drive(x, I) - x))


def _predict(model, next_model, I, x):
    r"""The branch through the fixed point `x` of `model`, followed to `next_model`
    along its tangent: $x + \dot x$ with $(1 - A)\dot x = (\partial F/\partial
    \theta)\Delta\theta$ (the implicit function theorem, forward mode; `x` where
    $1 - A$ is singular)."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    delta = jax.tree.map(
        jnp.subtract, eqx.filter(next_model, eqx.is_inexact_array), params
    )

    def fixed_point(p):
        return implicit_state(
            (eqx.combine(p, static), I),
            x_star=x,
            converged=jnp.array(True),
            method=ImplicitDiff(),
            relaxation=None,
        )

    _, dx = jax.jvp(fixed_point, (params,), (delta,))
    return jnp.where(jnp.all(jnp.isfinite(dx)), x + dx, x)


def _spectrum_at(model, I, x):
    return _sorted(jnp.linalg.eigvals(jacobian(model, x, I)))


@eqx.filter_jit
def _track(models, I, x_start, start_model, iterations):
    """Follow every pattern's fixed point from `x_start` (at `start_model`) through
    the stacked `models`: predictor and corrector (module docstring)."""
    arrays, static = eqx.partition(models, eqx.is_array)

    def one(carry, model_arrays):
        x_prev, on_branch, previous_arrays = carry
        model = eqx.combine(model_arrays, static)
        previous = eqx.combine(previous_arrays, static)

        def follow(i, x_, predicted):
            start = jnp.where(predicted, _predict(previous, model, i, x_), x_)
            return _newton(model, i, start, iterations)

        x, residual = jax.vmap(follow)(I, x_prev, on_branch)
        spectra = jax.vmap(lambda i, x_: _spectrum_at(model, i, x_))(I, x)
        ok = residual < 100 * jnp.sqrt(jnp.finfo(residual.dtype).eps)
        # A lost branch is not followed further: restart from the last good state,
        # without a predictor (its tangent belongs to an older model).
        carry = (jnp.where(ok[:, None], x, x_prev), ok, model_arrays)
        return carry, (x, residual, spectra)

    on_branch = jnp.ones(x_start.shape[0], bool)
    start = (x_start, on_branch, eqx.filter(start_model, eqx.is_array))
    _, out = jax.lax.scan(one, start, arrays)
    return out


@eqx.filter_jit
def _relax_all(model, I, x0, relaxation):
    return relax_patterns(model, I, x0, relaxation).x


@dataclasses.dataclass(frozen=True)
class StabilityLoss:
    """The first loss of stability along learning.

    - `index`: the snapshot index $k$ where it is first seen.
    - `step`: the update (or time) of that snapshot.
    - `crossing`: where $\\mathrm{Re}\\,\\lambda_1$ crosses zero, interpolated
      linearly between snapshots $k-1$ and $k$ (`step` if the branch was lost).
    - `pattern`: the pattern whose fixed point lost stability (the first, if several).
    - `kind`: `"saddle-node"` (a real eigenvalue crossed), `"Hopf"` (a complex pair)
      or `"fold"` (the fixed point vanished without a measured crossing).
    - `eigenvalue`: the leading eigenvalue at `index` (or the last one measured).
    """

    index: int
    step: float
    crossing: float
    pattern: int
    kind: str
    eigenvalue: complex


class StabilityTrace(eqx.Module):
    r"""Fixed points and spectra of every pattern along a learning run.

    - `steps`: $(K,)$ update numbers or times of the snapshots.
    - `x`: $(K, P, N)$ the tracked fixed points.
    - `residual`: $(K, P)$, $\|F(x) - x\|_\infty$ (large where a branch was lost).
    - `spectra`: $(K, P, N)$ eigenvalues of $L$, leading first.
    - `loss`: the first [`neurodyn.StabilityLoss`][], or None if every tracked fixed
      point stayed stable.
    """

    steps: Real[Array, " k"]
    x: Float[Array, "k p n"]
    residual: Float[Array, "k p"]
    spectra: Complex[Array, "k p n"]
    loss: StabilityLoss | None = eqx.field(static=True)

    @property
    def leading(self) -> Complex[Array, "k p"]:
        r"""$\lambda_1$, the eigenvalue of largest real part, per snapshot and
        pattern."""
        return self.spectra[..., 0]

    @property
    def tracked(self) -> Bool[Array, "k p"]:
        r"""Where Newton found the fixed point: a residual below
        $100\sqrt{\epsilon}$ of the floating-point type."""
        bound = 100 * float(jnp.finfo(self.residual.dtype).eps) ** 0.5
        return jnp.isfinite(self.residual) & (self.residual < bound)


def first_stability_loss(
    steps: ArrayLike,
    leading: Complex[ArrayLike, "k p"],
    tracked: Bool[ArrayLike, "k p"] | None = None,
    *,
    tol: float = 0.0,
    imag_tol: float = 1e-8,
) -> StabilityLoss | None:
    r"""The first snapshot where some pattern has $\mathrm{Re}\,\lambda_1 > $ `tol` or
    lost its fixed point (`tracked` False), classified by the imaginary part of the
    crossing eigenvalue: $|\mathrm{Im}\,\lambda_1| >$ `imag_tol` is a Hopf
    bifurcation, otherwise a saddle-node."""
    steps = np.asarray(as_float_array("steps", steps))
    if steps.ndim != 1:
        raise ValueError(
            f"`steps` must be one label per snapshot, (K,), got {steps.shape}."
        )
    check_finite("steps", steps)
    as_number("tol", tol, minimum=None)
    as_number("imag_tol", imag_tol, strict=False)
    leading = np.atleast_2d(np.asarray(leading))
    if leading.ndim != 2 or leading.shape[0] != steps.shape[0]:
        raise ValueError(
            f"`leading` must be (K, P) with K = len(`steps`) = {steps.shape[0]}, got "
            f"{leading.shape}."
        )
    tracked = (
        np.ones(leading.shape, bool) if tracked is None else np.asarray(tracked, bool)
    )
    unstable = (leading.real > tol) | ~tracked
    hits = np.argwhere(unstable)
    if hits.size == 0:
        return None
    k, p = (int(v) for v in hits[0])
    if tracked[k, p]:
        value = complex(leading[k, p])
        kind = "Hopf" if abs(value.imag) > imag_tol else "saddle-node"
    elif k > 0:
        value = complex(leading[k - 1, p])
        kind = "fold" if abs(value.imag) <= imag_tol else "Hopf"
    else:
        value, kind = complex("nan"), "fold"
    crossing = steps[k]
    if k > 0 and tracked[k, p]:
        before, after = leading[k - 1, p].real, leading[k, p].real
        if after != before:
            fraction = (tol - before) / (after - before)
            crossing = steps[k - 1] + fraction * (steps[k] - steps[k - 1])
    return StabilityLoss(k, float(steps[k]), float(crossing), p, kind, value)


def _stacked(source, steps):
    """`(models, steps)` from a History, an AnalogRun or a stacked model."""
    if isinstance(source, History):
        if source.snapshots is None:
            raise ValueError(
                "`source` is a History without snapshots; train with "
                "`snapshot_every=...`."
            )
        return source.snapshots, np.asarray(source.snapshot_steps)
    if isinstance(source, AnalogRun):
        return source.model, np.asarray(source.ts)
    if not isinstance(source, AbstractNetwork):
        raise ValueError(
            "`source` must be a `History` (with snapshots), an `AnalogRun` or a model "
            f"whose arrays carry a leading axis, got {type(source).__name__}."
        )
    k = jax.tree.leaves(eqx.filter(source, eqx.is_array))[0].shape[0]
    steps = np.arange(k) if steps is None else np.asarray(steps)
    if steps.shape != (k,):
        raise ValueError(f"`steps` must have shape ({k},), got {steps.shape}.")
    return source, steps


def stability_along(
    source: PyTree,
    I: ArrayLike,
    *,
    steps: ArrayLike | None = None,
    x0: ArrayLike | None = None,
    newton_iterations: int = 30,
    tol: float = 0.0,
    relaxation: Relaxation | None = None,
    **deprecated,
) -> StabilityTrace:
    r"""Track every pattern's fixed point and its spectrum along a learning run.

    **Arguments:**

    - `source`: a [`neurodyn.History`][] with snapshots (`nd.train(...,
        snapshot_every=...)`), a [`neurodyn.AnalogRun`][] (its `model` carries a
        leading time axis) or a model whose every array has a leading axis $K$.
    - `I`: the sources, $(N,)$ or $(P, N)$.

    **Other arguments:**

    - `steps`: labels of the $K$ models when `source` is a stacked model.
    - `x0`: where the first model is relaxed from (default 0.5).
    - `newton_iterations`: Newton steps per snapshot.
    - `tol`: stability is lost where $\mathrm{Re}\,\lambda_1 >$ `tol`.
    - `relaxation`: a [`neurodyn.Relaxation`][] for the first relaxation; default
        the analyses' tighter tolerances, `nd.Relaxation(rtol=1e-8, atol=1e-10)`
        (the old keywords `rtol=`, `atol=` still work, deprecated).

    **Returns:** a [`neurodyn.StabilityTrace`][]; its `loss` is the first
    [`neurodyn.StabilityLoss`][] or None.
    """
    models, steps = _stacked(source, steps)
    first = jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, models)
    I = jnp.atleast_2d(as_patterns("I", I, first.n_units))
    x0 = as_start(x0, I)
    as_count("newton_iterations", newton_iterations)
    as_number("tol", tol, minimum=None)
    relaxation = as_relaxation(
        "stability_along", relaxation, deprecated, ANALYSIS_SETTINGS
    )
    x_start = _relax_all(first, I, initial_state(first, I, x0), relaxation)
    x, residual, spectra = _track(models, I, x_start, first, newton_iterations)
    trace = StabilityTrace(jnp.asarray(steps), x, residual, spectra, None)
    loss = first_stability_loss(steps, trace.leading, trace.tracked, tol=tol)
    return StabilityTrace(trace.steps, x, residual, spectra, loss)


class _OnLoss(NamedTuple):
    """What a [`neurodyn.StabilityMonitor`][] does at the first loss of stability."""

    warns: bool
    stops: bool


_ON_LOSS = {
    "stop": _OnLoss(warns=False, stops=True),
    "warn": _OnLoss(warns=True, stops=False),
    "continue": _OnLoss(warns=False, stops=False),
}


class StabilityMonitor:
    r"""Watch the fixed points during [`neurodyn.train`][] and act when one loses
    stability; pass it as `callback=`.

    After every update it tracks each pattern's fixed point by Newton's method from
    the previous one and records the leading eigenvalue $\lambda_1$ of
    $(-1 + \partial F/\partial x)/\tau$. At the first model where some
    $\mathrm{Re}\,\lambda_1 > $ `tol` (or a fixed point vanishes) it does what
    `on_loss` says:

    - `"stop"`: end training there (the returned model is the first unstable one);
    - `"warn"`: emit a `RuntimeWarning` once and go on;
    - `"continue"`: only record it.

    `x0`, `tol`, `newton_iterations` and `relaxation` (for the first model's
    relaxation) are as for [`neurodyn.stability_along`][].

    After the run, `monitor.trace()` gives a [`neurodyn.StabilityTrace`][] and
    `monitor.loss` the [`neurodyn.StabilityLoss`][] (or None).

    !!! note
        An unstable fixed point cannot be reached by relaxation, so with `"warn"` or
        `"continue"` the next update usually fails with the non-convergence error.
    """

    def __init__(
        self,
        I: ArrayLike,
        *,
        on_loss: str = "stop",  # a key of _ON_LOSS, checked below
        x0: ArrayLike | None = None,
        tol: float = 0.0,
        newton_iterations: int = 30,
        relaxation: Relaxation | None = None,
    ):
        if not isinstance(on_loss, str) or on_loss not in _ON_LOSS:
            raise ValueError(
                f"`on_loss` must be 'stop', 'warn' or 'continue', got {on_loss!r}."
            )
        I = as_float_array("I", I)
        self.I = jnp.atleast_2d(as_patterns("I", I, I.shape[-1] if I.ndim else 1))
        self.on_loss = on_loss
        self._action = _ON_LOSS[on_loss]
        self.x0 = x0 if x0 is None else as_start(x0, self.I)
        as_number("tol", tol, minimum=None)
        as_count("newton_iterations", newton_iterations)
        self.tol = tol
        self.relaxation = as_relaxation(
            "StabilityMonitor", relaxation, {}, ANALYSIS_SETTINGS
        )
        self.newton_iterations = newton_iterations
        self.steps: list[int] = []
        self.states: list = []
        self.residuals: list = []
        self.spectra: list = []
        self.loss: StabilityLoss | None = None
        self._model: AbstractNetwork | None = None  # the last one tracked

    def __call__(self, step: int, model: AbstractNetwork) -> bool:
        I = as_patterns("I", self.I, model.n_units)
        if not self.states:
            x_prev = _relax_all(
                model, I, initial_state(model, I, self.x0), self.relaxation
            )
            previous = model
        else:
            x_prev, previous = self.states[-1], self._model
        stacked = jax.tree.map(lambda a: a[None] if eqx.is_array(a) else a, model)
        x, residual, spectra = _track(
            stacked, I, x_prev, previous, self.newton_iterations
        )
        self._model = model
        self.steps.append(step)
        self.states.append(x[0])
        self.residuals.append(residual[0])
        self.spectra.append(spectra[0])
        if self.loss is not None:
            return False
        trace = self.trace()
        self.loss = first_stability_loss(
            trace.steps, trace.leading, trace.tracked, tol=self.tol
        )
        if self.loss is None:
            return False
        if self._action.warns:
            warnings.warn(
                f"A fixed point lost stability at update {step} (pattern "
                f"{self.loss.pattern}, {self.loss.kind}, leading eigenvalue "
                f"{self.loss.eigenvalue:.4g}).",
                RuntimeWarning,
                stacklevel=2,
            )
        return self._action.stops

    def trace(self) -> StabilityTrace:
        """What was recorded so far, as a [`neurodyn.StabilityTrace`][]."""
        return StabilityTrace(
            jnp.asarray(self.steps),
            jnp.stack(self.states),
            jnp.stack(self.residuals),
            jnp.stack(self.spectra),
            self.loss,
        )
