"""Demo `cam-figure1`: Pineda's figure 1, a master/slave content-addressable memory
(10 visible + 5 hidden units) storing 4 random binary memories, with its basins.

The paper's experiment (Example 3): a fully connected network of 10 visible and 5
hidden units stores four random binary vectors scaled into [0.1, 0.9]. The master
(eqs 31, 36) and the weights (eq 35) are approximated by first-order finite
differences with dt = 1 and eta = 1, deterministic method (eq 19: one update per
sweep with the gradient summed over the memories). Here every update runs
`EULER_STEPS` Euler steps of the master from eq 39's start state (visible = T,
hidden = 0.5), `EULER_STEPS` Euler steps of the closed-form error dynamics (eq 36)
from y = 0, and then W <- W + eta sum_a y_a Z_a^T. With dt = 1 an Euler step of
eq 31 is the iteration z <- g(WZ) + I. The same experiment is run by neurodyn's
adaptive path (`nd.train` with `optax.sgd(1.0)`: diffrax Tsit5 relaxations to the
steady-state event and the generic adjoint). After every update, the slave (eq 1)
is relaxed from each memory's start state to measure its E_total.
"""

import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import model_arrays, model_config, write_json


N_VISIBLE, N_HIDDEN, N_MEMORIES = 10, 5, 4
N_UNITS = N_VISIBLE + N_HIDDEN
ETA, DT = 1.0, 1.0
EULER_STEPS = 20  # Euler steps of the master (eq 31) and of eq 36, per update
WEIGHT_SCALE = 0.3  # initial w_ik ~ N(0, WEIGHT_SCALE^2); the paper gives none
THRESHOLD = 1e-2
RECALL_TOL = 0.05
SEED = 0
SLAVE_T_MAX = 1e4  # horizon of the slave relaxations that measure its E_total
SENSITIVITY_STEPS = (1, 2, 3, 5, 10, 20)  # Euler steps per relaxation, compared


def memories(seed: int = SEED) -> np.ndarray:
    """4 random binary memories on the visible units, scaled into {0.1, 0.9}; the
    hidden entries (ignored) are 0.5. Shape (4, 15)."""
    rng = np.random.default_rng(seed)
    T = np.full((N_MEMORIES, N_UNITS), 0.5)
    T[:, :N_VISIBLE] = 0.1 + 0.8 * rng.integers(0, 2, size=(N_MEMORIES, N_VISIBLE))
    return T


def initial_memory(seed: int = SEED) -> nd.ContentAddressableMemory:
    rng = np.random.default_rng(seed + 1)
    weights = WEIGHT_SCALE * rng.normal(size=(N_UNITS, N_UNITS))
    return nd.ContentAddressableMemory(weights, np.arange(N_UNITS) < N_VISIBLE)


def with_weights(
    cam: nd.ContentAddressableMemory, weights
) -> nd.ContentAddressableMemory:
    return eqx.tree_at(lambda m: m.weights, cam, weights)


@eqx.filter_jit
def euler_training(cam, I, T, steps: int, eta: float, dt: float, relax_steps: int):
    r"""Pineda's discrete experiment: `steps` deterministic updates, each relaxing
    the master (eq 31) and the error signal (eq 36) by `relax_steps` Euler steps of
    size `dt` and then applying $\Delta W = \eta\sum_a y_a Z_a^T$ (eqs 35, 19).

    Returns the weights after $0..S$ updates $(S+1, N, N)$, $E_{\text{master}}$ at
    each $(S+1,)$ and the largest master residual $\|F(z) - z\|_\infty$ met.
    """
    start = nd.memory_start(cam, T)

    def sweep(weights):
        model = with_weights(cam, weights)

        def one(i, t, z0):
            source = model.training_source(i, t)
            z = jax.lax.fori_loop(
                0, relax_steps, lambda _, z: z + dt * (model.drive(z, source) - z), z0
            )
            J = model.error(z, t)
            y = jax.lax.fori_loop(
                0,
                relax_steps,
                lambda _, y: y + dt * model.error_dynamics(y, z, source, J),
                jnp.zeros_like(z),
            )
            residual = jnp.max(jnp.abs(model.drive(z, source) - z))
            return 0.5 * jnp.sum(J**2), model.weight_dynamics(y, z, source), residual

        E, velocity, residual = jax.vmap(one)(I, T, start)
        return jnp.sum(E), jnp.sum(velocity, axis=0), jnp.max(residual)

    def update(weights, _):
        E, velocity, residual = sweep(weights)
        return weights + eta * velocity, (weights, E, residual)

    final, (history, E, residual) = jax.lax.scan(
        update, cam.weights, None, length=steps
    )
    E_final, _, residual_final = sweep(final)
    return (
        jnp.concatenate([history, final[None]]),
        jnp.append(E, E_final),
        jnp.maximum(jnp.max(residual), residual_final),
    )


@eqx.filter_jit
def slave_errors(cam, weights, I, T):
    r"""$E_{\text{total}}$ of the slave (eq 1) for each weight matrix in `weights`
    $(K, N, N)$: every memory's slave relaxed from visible $= T$, hidden $= 0.5$,
    measured on the visible units. Also whether every relaxation settled."""
    start = nd.memory_start(cam, T)

    def one(w):
        model = with_weights(cam, w)
        # Near a basin boundary the slave can take thousands of time constants.
        fp = nd.relax(model, I, x0=start, relaxation=nd.Relaxation(t_max=SLAVE_T_MAX))
        return 0.5 * jnp.sum(model.error(fp.x, T) ** 2), jnp.all(fp.converged)

    return jax.lax.map(one, weights)


def updates_to(E, threshold: float = THRESHOLD) -> int | None:
    """The first number of updates after which E < threshold (None: never)."""
    below = np.flatnonzero(np.asarray(E) < threshold)
    return int(below[0]) if below.size else None


def outcome_fractions(result: nd.Recall, target: np.ndarray) -> dict[str, float]:
    """The fractions of recalls that reached the `target` memory, another memory, or
    a spurious attractor / no fixed point."""
    memory = np.asarray(result.memory)
    return {
        "correct memory": float(np.mean(memory == target)),
        "other memory": float(np.mean((memory >= 0) & (memory != target))),
        "spurious or no fixed point": float(np.mean(memory < 0)),
    }


def recall_vs_known(cam, T, trials: int, rng) -> tuple[np.ndarray, dict]:
    """For k = 0..10 known visible units (a random subset per trial, at the memory's
    values; the rest 0.5, eq 28), the fractions of outcomes."""
    counts = np.arange(N_VISIBLE + 1)
    cues, known, target = [], [], []
    for k in counts:
        for a in range(N_MEMORIES):
            for _ in range(trials):
                mask = np.zeros(N_UNITS, bool)
                mask[rng.choice(N_VISIBLE, size=k, replace=False)] = True
                cues.append(T[a])
                known.append(mask)
                target.append(a)
    result = nd.recall(cam, np.stack(cues), np.stack(known), T, tol=RECALL_TOL)
    return counts, _per_setting(result, np.asarray(target), len(counts))


def recall_vs_noise(cam, T, trials: int, rng) -> tuple[np.ndarray, dict]:
    """All visible units known but perturbed by Gaussian noise of standard deviation
    sigma (clipped to [0, 1]); hidden units 0.5."""
    sigmas = np.linspace(0.0, 0.6, 13)
    cues, target = [], []
    for sigma in sigmas:
        for a in range(N_MEMORIES):
            noisy = T[a] + sigma * rng.normal(size=(trials, N_UNITS))
            cues.append(np.clip(noisy, 0.0, 1.0))
            target += [a] * trials
    known = np.broadcast_to(np.arange(N_UNITS) < N_VISIBLE, (len(target), N_UNITS))
    result = nd.recall(cam, np.concatenate(cues), known, T, tol=RECALL_TOL)
    return sigmas, _per_setting(result, np.asarray(target), len(sigmas))


def _per_setting(result: nd.Recall, target: np.ndarray, settings: int) -> dict:
    per = [
        outcome_fractions(
            jax.tree.map(lambda v: np.asarray(v).reshape(settings, -1)[s], result),
            target.reshape(settings, -1)[s],
        )
        for s in range(settings)
    ]
    return {key: np.array([p[key] for p in per]) for key in per[0]}


def distinct_states(states: np.ndarray, gap: float = 0.05) -> np.ndarray:
    """One representative of each group of states within `gap` of each other on
    every unit."""
    distinct: list[np.ndarray] = []
    for x in states:
        if not any(np.max(np.abs(x - d)) < gap for d in distinct):
            distinct.append(x)
    return np.array(distinct).reshape(-1, states.shape[-1])


def random_starts(cam, T, count: int, rng) -> dict:
    """Relax the slave from uniformly random states in [0, 1]^N: how many reach each
    memory, how many reach a spurious attractor (a fixed point not within
    `RECALL_TOL` of a memory; told apart at 0.05 on every unit), how many settle on
    an unstable fixed point (a saddle: flagged by the stability certificate of
    `nd.relax`), and how many do not settle. Whatever is counted as a memory or an
    attractor has every eigenvalue of its linearisation with negative real part
    (`nd.spectrum`, checked here too: a state with one that is not counts as a
    saddle). Also every start's final state and outcome (memory index, -1 spurious
    attractor, -2 not settled, -3 saddle)."""
    starts = rng.uniform(0.0, 1.0, size=(count, N_UNITS))
    I = np.zeros_like(starts)
    fp = nd.relax(cam, I, x0=starts)
    memory, _ = nd.nearest_memory(cam, fp.x, jnp.asarray(T), tol=RECALL_TOL)
    memory = np.where(np.asarray(fp.converged), np.asarray(memory), -2)
    leading = np.asarray(nd.spectrum(cam, fp.x, I)[:, 0].real)
    saddle = np.asarray(fp.result == nd.RESULTS.unstable) | (
        (memory != -2) & (leading >= 0)
    )
    memory = np.where(saddle, -3, memory)
    attractors = distinct_states(np.asarray(fp.x)[memory == -1])
    return {
        "starts": count,
        "reached_memory": [int(np.sum(memory == a)) for a in range(N_MEMORIES)],
        "reached_spurious": int(np.sum(memory == -1)),
        "settled_on_a_saddle": int(np.sum(memory == -3)),
        "not_converged": int(np.sum(memory == -2)),
        "distinct_spurious_attractors": len(attractors),
        "spurious_leading_real_part_max": (
            float(np.max(leading[memory == -1])) if np.any(memory == -1) else None
        ),
        "distinct_saddles": len(distinct_states(np.asarray(fp.x)[memory == -3])),
        "spurious_attractors": attractors,
        "random_start_states": np.asarray(fp.x),
        "random_start_outcomes": memory,
    }


def run(out: pathlib.Path, *, small: bool = False) -> dict:
    steps = 250 if small else 400
    trials = 6 if small else 40
    num_random = 100 if small else 1000
    T = memories()
    I = np.zeros_like(T)
    cam = initial_memory()

    euler_weights, E_master_euler, residual = euler_training(
        cam, I, T, steps, ETA, DT, EULER_STEPS
    )
    adaptive = nd.train(
        cam, I, T, optimizer=optax.sgd(ETA), steps=steps, snapshot_every=1
    )
    E_slave_euler, settled_euler = slave_errors(cam, euler_weights, I, T)
    E_slave_adaptive, settled_adaptive = slave_errors(
        cam, adaptive.history.snapshots.weights, I, T
    )
    sensitivity = {}
    for relax_steps in () if small else SENSITIVITY_STEPS:
        weights, E_master, _ = euler_training(cam, I, T, steps, ETA, DT, relax_steps)
        E_slave, _ = slave_errors(cam, weights[-1:], I, T)
        sensitivity[relax_steps] = {
            "master_updates_to_E_below_1e-2": updates_to(E_master),
            "final_E_total_master": float(E_master[-1]),
            "final_E_total_slave": float(E_slave[0]),
        }
    curves = {
        f"Euler $\\Delta t$ = 1 ({EULER_STEPS} steps/relaxation)": (
            E_master_euler,
            E_slave_euler,
        ),
        "adaptive (diffrax Tsit5)": (adaptive.history.E_total, E_slave_adaptive),
    }
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot.master_slave_curves(
        ax,
        curves,
        threshold=THRESHOLD,
        title=(
            f"Pineda fig. 1: CAM, {N_VISIBLE} visible + {N_HIDDEN} hidden units, "
            f"{N_MEMORIES} memories, $\\eta$ = {ETA:g}"
        ),
    )
    plot.save(fig, out / "figure1.png")

    trained = with_weights(cam, euler_weights[-1])
    rng = np.random.default_rng(SEED + 2)
    full = nd.recall(
        trained, T, np.broadcast_to(trained.visible_units, T.shape), T, tol=RECALL_TOL
    )
    counts, by_known = recall_vs_known(trained, T, trials, rng)
    sigmas, by_noise = recall_vs_noise(trained, T, trials, rng)
    basins = random_starts(trained, T, num_random, rng)

    # %% [markdown]
    # The attractor landscape of the trained slave: every fixed point reached by
    # minimising q(x) = |F(x) - x|^2 / 2 from random starts and from noisy copies of
    # the memories (`nd.find_fixed_points`), classified by its spectrum. The saddles
    # between memories are the points the slave's jumps in figure 1 pass by; a
    # relaxation from each saddle along its unstable directions
    # (`nd.unstable_manifolds`) says which memories it separates.
    # %%
    bias = np.zeros(N_UNITS)
    starts = np.concatenate(
        [
            rng.uniform(0.0, 1.0, size=(num_random, N_UNITS)),
            nd.starts_near(nd.memory_start(trained, T), 100, noise=0.1),
        ]
    )
    landscape = nd.find_fixed_points(trained, bias, starts=starts)
    manifolds = nd.unstable_manifolds(trained, bias, landscape)
    summary = nd.memory_landscape(trained, T, landscape, manifolds=manifolds)
    labels = {
        i: f"memory {a}" for i, a in enumerate(summary.pop("memory_of_point")) if a >= 0
    }
    fig, ax = plt.subplots(figsize=(7, 5.5))
    plot.fixed_points(
        ax,
        landscape,
        states=manifolds.x,
        manifolds=manifolds,
        labels=labels,
        title="the slave's fixed points and the saddles between memories",
    )
    plot.save(fig, out / "landscape.png")

    fig, (ax_known, ax_noise, ax_random) = plt.subplots(1, 3, figsize=(15, 4.3))
    plot.outcome_rates(
        ax_known,
        counts,
        by_known,
        xlabel="known visible units $|K|$ (others start at 0.5)",
        title=f"recall from a partial cue ({trials} cues per memory and $|K|$)",
    )
    plot.outcome_rates(
        ax_noise,
        sigmas,
        by_noise,
        xlabel="cue noise $\\sigma$ on every visible unit",
        title=f"recall from a noisy cue ({trials} cues per memory and $\\sigma$)",
    )
    labels = [f"memory\n{a}" for a in range(N_MEMORIES)]
    labels += ["spurious\nattractor", "saddle", "no fixed\npoint"]
    heights = [
        *basins["reached_memory"],
        basins["reached_spurious"],
        basins["settled_on_a_saddle"],
        basins["not_converged"],
    ]
    ax_random.bar(labels, heights, color=["C0"] * N_MEMORIES + ["C3", "C1", "C7"])
    ax_random.set_ylabel("random starts")
    ax_random.set_title(
        f"{num_random} random starts: {basins['distinct_spurious_attractors']} "
        "distinct spurious attractors\n(attractor: every eigenvalue of "
        "$-1 + \\partial F/\\partial x$ has Re < 0)",
        fontsize="medium",
    )
    ax_random.tick_params(axis="x", labelsize="small")
    plot.save(fig, out / "recall.png")

    np.savez(out / "params.npz", **model_arrays(trained))
    np.savez(out / "params_adaptive.npz", **model_arrays(adaptive.model))
    np.savez(out / "data.npz", I=I, T=T)
    np.savez(
        out / "history.npz",
        E_total_master_euler=np.asarray(E_master_euler),
        E_total_slave_euler=np.asarray(E_slave_euler),
        E_total_master_adaptive=np.asarray(adaptive.history.E_total),
        E_total_slave_adaptive=np.asarray(E_slave_adaptive),
    )
    np.savez(
        out / "recall.npz",
        known_units=counts,
        noise=sigmas,
        spurious_attractors=basins.pop("spurious_attractors"),
        random_start_states=basins.pop("random_start_states"),
        random_start_outcomes=basins.pop("random_start_outcomes"),
        **{f"vs_known_{k.replace(' ', '_')}": v for k, v in by_known.items()},
        **{f"vs_noise_{k.replace(' ', '_')}": v for k, v in by_noise.items()},
    )
    write_json(
        out / "config.json",
        {
            "demo": "cam-figure1",
            "model": model_config(trained),
            "n_visible": N_VISIBLE,
            "n_hidden": N_HIDDEN,
            "eta": ETA,
            "dt": DT,
            "euler_steps_per_relaxation": EULER_STEPS,
            "updates": steps,
            "initial_weight_scale": WEIGHT_SCALE,
            "seed": SEED,
            "recall_tol": RECALL_TOL,
            "params": "params.npz holds the Euler-trained weights",
        },
    )
    metrics = {
        "final_E_total_master": float(E_master_euler[-1]),
        "final_E_total_slave": float(E_slave_euler[-1]),
        "updates_to_E_below_1e-2": {
            "euler_dt1": {
                "master": updates_to(E_master_euler),
                "slave": updates_to(E_slave_euler),
            },
            "adaptive": {
                "master": updates_to(adaptive.history.E_total),
                "slave": updates_to(E_slave_adaptive),
            },
        },
        "adaptive": {
            "final_E_total_master": float(adaptive.history.E_total[-1]),
            "final_E_total_slave": float(E_slave_adaptive[-1]),
        },
        "euler_steps_per_relaxation": EULER_STEPS,
        "euler_max_master_residual": float(residual),
        "euler_steps_sensitivity": sensitivity,
        "slave_always_settled": bool(np.all(settled_euler))
        and bool(np.all(settled_adaptive)),
        "updates": steps,
        "recalled_from_full_cue": int(np.sum(np.asarray(full.memory) == np.arange(4))),
        "recall_max_visible_error": float(np.max(np.asarray(full.distance))),
        "recall_vs_known_units": {
            int(k): float(v) for k, v in zip(counts, by_known["correct memory"])
        },
        "recall_vs_noise": {
            round(float(s), 3): float(v)
            for s, v in zip(sigmas, by_noise["correct memory"])
        },
        "random_starts": basins,
        "landscape": summary,
    }
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
