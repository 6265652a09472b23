r"""Discrete learning of fixed points: one optax update per relaxation of the
patterns (Pineda eqs 13, 19, 20)."""

import contextlib
import importlib.util
import json
import pathlib
import sys
from collections.abc import Callable, Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree

from .._batch import batched
from .._gradients import RecurrentBackprop, check_method, pattern_errors
from .._models.base import AbstractNetwork
from .._relax import as_relaxation, check_converged, initial_state
from .._runs import model_config
from .._solvers.base import Relaxation
from .._validation import (
    as_count,
    as_patterns,
    as_start,
    check_instance,
    check_network,
    check_same_batch,
)
from .checkpoint import (
    fingerprint,
    load_checkpoint,
    save_checkpoint,
    spans_processes,
    to_host,
)
from .jacobian_penalty import JacobianPenalty
from .modes import AbstractPatternMode, as_mode
from .rules import AbstractLearningRule, rule_gradients


def stack_models(models: list[PyTree]) -> PyTree:
    """Stack equally-shaped models into one whose every array has a leading axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *models)


class History(eqx.Module):
    r"""What happened during [`neurodyn.train`][].

    - `E_total`: $(S+1,)$, $E_{\text{total}} = \sum_a E[a]$ at the weights after
      $0, 1, \dots, S$ updates (each pattern relaxed from its start state).
    - `E_patterns`: $(S+1, P)$, the per-pattern errors $E[a]$.
    - `presented`: $(S, P)$, the coefficients $c_a$ of each update (all ones for the
      deterministic mode, one-hot for the stochastic one).
    - `snapshots`: the model after the updates in `snapshot_steps`, every array with
      a leading axis (or None).
    """

    E_total: Float[Array, " s"]
    E_patterns: Float[Array, "s p"]
    presented: Float[Array, "s1 p"]
    snapshot_steps: Int[Array, " k"]
    snapshots: PyTree | None


class TrainResult(eqx.Module):
    """The trained `model` and the `history` of the run."""

    model: AbstractNetwork
    history: History


@eqx.filter_jit
def _update(
    params,
    opt_state,
    x0,
    key,
    static,
    I,
    T,
    mode,
    method,
    relaxation,
    optimizer,
    rule,
    regularizer,
):
    num_patterns = I.shape[0]
    coefficients = mode.pattern_weights(key, num_patterns)

    def objective(params):
        model = eqx.combine(params, static)
        errors, fp = pattern_errors(model, I, T, x0, method, relaxation)
        total = jnp.sum(coefficients * errors)
        if regularizer is not None:  # an extra loss term at the fixed points
            source = batched(model.training_source, I, T)
            probes = jr.fold_in(key, 1)  # independent of the mode's draw
            total = total + regularizer(model, fp.x, source, coefficients, probes)
        return total, (errors, fp)

    (_, (errors, fp)), grads = eqx.filter_value_and_grad(objective, has_aux=True)(
        params
    )
    errors, grads = check_converged(fp, (errors, grads))
    if rule is not None:  # a Zhu & Rosenbaum rule replaces the Euclidean gradient
        model = eqx.combine(params, static)
        grads = rule_gradients(rule, model, grads, fp, I, T, coefficients)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    last_presented = num_patterns - 1 - jnp.argmax(coefficients[::-1] > 0)
    return params, opt_state, errors, coefficients, fp.x[last_presented]


@eqx.filter_jit
def _errors(params, static, I, T, x0, method, relaxation):
    """Per-pattern errors and the fixed points they come from (no gradient)."""
    return pattern_errors(eqx.combine(params, static), I, T, x0, method, relaxation)


def _identity(strategy) -> list:
    """What identifies a strategy (mode, method, rule, regularizer) in a run's
    fingerprint: its type with every static field and number (printed) and the
    values of its arrays: another `beta` or number of phantom steps is another
    run."""
    arrays, rest = eqx.partition(strategy, eqx.is_array)
    return [eqx.tree_pformat(rest), *jax.tree.leaves(arrays)]


@contextlib.contextmanager
def _progress_bar(show: bool, total: int, completed: int) -> Iterator[Callable]:
    """`advance()`, which moves a rich progress bar of `total` updates when `show`
    (and does nothing otherwise)."""
    if not show:
        yield lambda: None
        return
    try:
        from rich.progress import Progress
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "`progress=True` draws with rich, which is not installed; install the "
            'cli extra (pip install "neurodyn[cli]") or pass `progress=False`.',
            name=e.name,
        ) from e
    with Progress(transient=True) as bar:
        task = bar.add_task("training", total=total, completed=completed)
        yield lambda: bar.update(task, advance=1)


def train(
    model: AbstractNetwork,
    I: ArrayLike,
    T: ArrayLike,
    *,
    optimizer: optax.GradientTransformation,
    steps: int,
    mode: AbstractPatternMode | str = "deterministic",
    method=RecurrentBackprop(),
    key: PRNGKeyArray | None = None,
    reinitialize: bool = True,
    x0: ArrayLike | None = None,
    snapshot_every: int | None = None,
    checkpoint_dir: str | pathlib.Path | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    progress: bool | None = None,
    relaxation: Relaxation | None = None,
    callback: Callable[[int, AbstractNetwork], bool | None] | None = None,
    rule: AbstractLearningRule | None = None,
    regularizer: JacobianPenalty | None = None,
    **deprecated,
) -> TrainResult:
    r"""Learn fixed points by repeated relaxation and gradient steps.

    Every update relaxes the patterns, takes the gradient of
    $\sum_a c_a E[a]$ by `method` and applies one `optimizer` step. With
    `optax.sgd(eta)` and the deterministic mode this is Pineda's eq 19,
    $\Delta w_{ij} = \eta \sum_a y_i^{*}[a]\, x_j^{*}[a]$; with the stochastic mode it
    is eq 13 applied to one random pattern per update (eq 20).

    **Arguments:**

    - `model`: the network to train; its floating-point arrays are learned, its
        masks are not.
    - `I`, `T`: patterns, $(P, N)$ (or $(N,)$ for one).
    - `optimizer`: an optax transformation, e.g. `optax.sgd(eta)` or
        `optax.adam(1e-2)`.
    - `steps`: the number of updates $S$.
    - `mode`: `"deterministic"` (eq 19, default), `"stochastic"` (eq 20) or an
        [`neurodyn.AbstractPatternMode`][].
    - `method`: the gradient method, default [`neurodyn.RecurrentBackprop`][].

    **Other arguments:**

    - `key`: the random key of the stochastic mode (update $k$ uses
        `jr.fold_in(key, k)`, so a resumed run draws the same patterns).
    - `reinitialize`: start every relaxation from `x0` (default 0.5, "the safest
        approach"). If False the state carries over: all patterns of an update start
        from the final state of the last pattern presented in the previous update.
    - `snapshot_every`: keep the model every this many updates in the history.
    - `checkpoint_dir`, `checkpoint_every`: write a checkpoint every this many
        updates (and when interrupted by Ctrl-C); with `resume=True` a run continues
        from the checkpoint to exactly the result of an uninterrupted run. With
        patterns sharded over several processes (`jax.distributed`), process 0
        writes the checkpoints and every process reads them on resume.
    - `progress`: show a progress bar (it needs rich, the `cli` extra); default
        only on a terminal, and only if rich is installed.
    - `relaxation`: a [`neurodyn.Relaxation`][], for every relaxation of the run
        (the old keywords `solver=`, `rtol=`, ... still work, deprecated).
    - `callback`: called as `callback(k, model)` with the model after $k$ updates,
        for $k = 0, 1, \dots$; returning True stops the run there (the history ends
        at $k$, with NaN errors for patterns that no longer relax). E.g. a
        [`neurodyn.StabilityMonitor`][].
    - `rule`: feed the optimizer a Zhu & Rosenbaum rule's direction instead of the
        Euclidean gradient ([`neurodyn.DW1`][], [`neurodyn.DW2`][],
        [`neurodyn.DW3`][]; for an [`neurodyn.RateNetwork`][]); with
        `optax.sgd(eta)` (and `DW2(eta)`) each update is the rule's $\Delta W$.
    - `regularizer`: an extra loss term at the fixed points, added to
        $\sum_a c_a E[a]$ before differentiating, e.g. [`neurodyn.JacobianPenalty`][]
        (probes drawn from `jr.fold_in(jr.fold_in(key, k), 1)` at update $k$). The
        history records $E$ without it.

    **Returns:** a [`neurodyn.TrainResult`][] with the trained `model` and `history`.

    **Raises:** the non-convergence error of [`neurodyn.value_and_grad`][] if a
    relaxation fails during training (the checkpoint before it remains).
    """
    check_network(model)
    check_method(method)
    mode = as_mode(mode)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "`optimizer` must be an optax optimizer such as `optax.sgd(0.1)`, got "
            f"{optimizer!r}."
        )
    as_count("steps", steps, minimum=0)
    as_count("checkpoint_every", checkpoint_every)
    if snapshot_every is not None:
        as_count("snapshot_every", snapshot_every)
    if rule is not None:
        check_instance(
            "rule",
            rule,
            AbstractLearningRule,
            "`nd.DW1()`, `nd.DW2(eta)` or `nd.DW3()`",
        )
    if regularizer is not None:
        check_instance(
            "regularizer",
            regularizer,
            JacobianPenalty,
            "`nd.JacobianPenalty(strength)`",
        )
    if regularizer is not None and rule is not None:
        raise ValueError(
            "`regularizer` adds a term to the loss, whose gradient a `rule` replaces: "
            "give one of them, not both."
        )
    if callback is not None and not callable(callback):
        raise TypeError(
            f"`callback` must be a function callback(k, model), got {callback!r}."
        )
    relaxation = as_relaxation("train", relaxation, deprecated)
    I = as_patterns("I", I, model.n_units)
    T = as_patterns("T", T, model.n_units).astype(I.dtype)
    check_same_batch(I, T)
    x0 = as_start(x0, I)
    I, T = jnp.atleast_2d(I), jnp.atleast_2d(T)
    key = jr.key(0) if key is None else key

    params, static = eqx.partition(model, eqx.is_inexact_array)
    start_state = initial_state(model, I, x0)
    state = (params, optimizer.init(params), start_state[-1])
    history = {"E_patterns": [], "presented": []}
    snapshots = {}
    first = 0
    stopped = None  # the update at which `callback` ended the run
    folder = None if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
    # What a checkpoint must share to be resumed here (not `steps`: a resumed run may
    # go on for longer, and update k does not depend on the total).
    run_id = fingerprint(
        model=[json.dumps(model_config(model)), eqx.filter(static, eqx.is_array)],
        patterns=[I, T, start_state],
        procedure=[_identity(s) for s in (mode, method, rule, regularizer)],
        reinitialize=np.asarray(reinitialize),
        key=key,
    )
    if resume:
        if folder is None:
            raise ValueError("`resume=True` needs a `checkpoint_dir`.")
        loaded = load_checkpoint(folder, state, run_id)
        if loaded is not None:
            first, state, saved = loaded
            history = {
                k: list(saved[k]) if k in saved else []
                for k in ("E_patterns", "presented")
            }
            snapshots = _unflatten_snapshots(saved, params)

    # Patterns sharded over several processes: every process gathers what a
    # checkpoint holds, process 0 writes it.
    spread = spans_processes(I)
    writes = not spread or jax.process_index() == 0

    def checkpoint(step):
        if folder is not None:
            saved = to_host((state, _flat_history(history, snapshots)))
            if writes:
                save_checkpoint(folder, step, *saved, run_id)

    if progress is None:
        progress = sys.stderr.isatty() and importlib.util.find_spec("rich") is not None
    try:
        with _progress_bar(progress, steps, first) as advance:
            for k in range(first, steps):
                params, opt_state, carry = state
                if callback is not None and callback(k, eqx.combine(params, static)):
                    stopped = k
                    break
                if snapshot_every is not None and k % snapshot_every == 0:
                    snapshots[k] = params
                x_start = (
                    start_state if reinitialize else jnp.broadcast_to(carry, I.shape)
                )
                *new_state, errors, coefficients, carry = _update(
                    params,
                    opt_state,
                    x_start,
                    jr.fold_in(key, k),
                    static,
                    I,
                    T,
                    mode,
                    method,
                    relaxation,
                    optimizer,
                    rule,
                    regularizer,
                )
                state = (*new_state, carry)
                history["E_patterns"].append(to_host(errors))
                history["presented"].append(to_host(coefficients))
                if (k + 1) % checkpoint_every == 0:
                    checkpoint(k + 1)
                advance()
    except KeyboardInterrupt:
        # Over several processes, a gather now could wait forever on a process the
        # interrupt stopped elsewhere: resume from the last regular checkpoint.
        if not spread:
            checkpoint(len(history["presented"]))
        raise

    params, _, carry = state
    if stopped is None and callback is not None:
        if callback(steps, eqx.combine(params, static)):
            stopped = steps
    done = steps if stopped is None else stopped
    if first < done:
        checkpoint(done)
    x_start = start_state if reinitialize else jnp.broadcast_to(carry, I.shape)
    final, fp = _errors(params, static, I, T, x_start, method, relaxation)
    final, fp = to_host((final, fp))
    # A run stopped by `callback` (e.g. at a loss of stability) may end where some
    # patterns no longer relax: NaN marks them. Otherwise a failure is an error.
    if stopped is None:
        final = check_converged(fp, final)
    else:
        final = jnp.where(fp.converged, final, jnp.nan)
    if snapshot_every is not None:
        snapshots[done] = params
    E_patterns = jnp.stack([*map(jnp.asarray, history["E_patterns"]), final])
    presented = (
        jnp.stack([jnp.asarray(c) for c in history["presented"]])
        if history["presented"]
        else jnp.zeros((0, I.shape[0]))
    )
    order = sorted(snapshots)
    return TrainResult(
        eqx.combine(params, static),
        History(
            E_total=jnp.sum(E_patterns, axis=1),
            E_patterns=E_patterns,
            presented=presented,
            snapshot_steps=jnp.asarray(order, dtype=int),
            snapshots=(
                stack_models([eqx.combine(snapshots[s], static) for s in order])
                if order
                else None
            ),
        ),
    )


def _flat_history(history: dict, snapshots: dict) -> dict[str, np.ndarray]:
    flat = {k: np.asarray(v) for k, v in history.items() if len(v)}
    if snapshots:
        order = sorted(snapshots)
        flat["snapshot_steps"] = np.asarray(order)
        leaves = [jax.tree.leaves(snapshots[s]) for s in order]
        for i in range(len(leaves[0])):
            flat[f"snapshot_leaf_{i}"] = np.stack([np.asarray(ls[i]) for ls in leaves])
    return flat


def _unflatten_snapshots(saved: dict, params: PyTree) -> dict[int, PyTree]:
    """Invert the snapshot part of `_flat_history`."""
    if "snapshot_steps" not in saved:
        return {}
    treedef = jax.tree.structure(params)
    leaves = [saved[f"snapshot_leaf_{i}"] for i in range(treedef.num_leaves)]
    return {
        int(step): jax.tree.unflatten(treedef, [jnp.asarray(x[j]) for x in leaves])
        for j, step in enumerate(saved["snapshot_steps"])
    }
