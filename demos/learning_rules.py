"""Demo `learning-rules`: one energy network and data set, trained side by side by the
exact gradient, Jacobian-free backprop, the phantom gradient and equilibrium
propagation (one-sided and symmetric), with the same optimizer and budget: learning
curves, the angle to the exact gradient along learning, time and memory per
gradient, and whether every fixed point stayed stable. Second part: the `stability`
demo's setting at the learning rate where gradient descent loses stability, with a
Jacobian penalty and with Zhu & Rosenbaum's dW2. Third part: equilibrium propagation
with continual weight updates (C-EP, on `nd.analog_learning`) against EP by SGD at
the same rates."""

import pathlib
import time

import equinox as eqx
import jax
import matplotlib.pyplot as plt
import numpy as np
import optax

import neurodyn as nd
from neurodyn import plot
from neurodyn._demos import stability
from neurodyn._runs import (
    model_arrays,
    model_config,
    relaxation_config,
    write_json,
)


N, N_IN, N_OUT, P = 10, 4, 2, 8
# label -> method; every method trains the same start with the same optimizer
METHODS = {
    "exact (ImplicitDiff)": nd.ImplicitDiff(),
    "JFB (SemiGradient)": nd.SemiGradient(),
    "phantom k=5": nd.PhantomGradient(5, 0.5),
    "EP beta=0.1": nd.EquilibriumPropagation(0.1),
    "EP beta=0.1 symmetric": nd.EquilibriumPropagation(0.1, symmetric=True),
}


def masks() -> tuple[np.ndarray, np.ndarray]:
    units = np.arange(N)
    return units < N_IN, units >= N - N_OUT


def network(weights: np.ndarray) -> nd.EnergyNetwork:
    input_units, output_units = masks()
    return nd.EnergyNetwork(weights, input_units=input_units, output_units=output_units)


def problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""A realisable regression: `T` = a teacher energy network's fixed points under
    `P` random inputs (only the outputs count); returns the student's start
    weights, `I` and `T`. With the logistic $\rho$ ($\rho' \le 1/4$) the recurrence
    is weak: $\partial F/\partial s$ has eigenvalues of about 0.03."""
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(N, N)) * 2.0 / np.sqrt(N)
    I = np.zeros((P, N))
    I[:, :N_IN] = rng.uniform(-2, 2, size=(P, N_IN))
    T = np.asarray(nd.relax(network(teacher), I, throw=True).x)
    start = rng.normal(size=(N, N)) * 0.3 / np.sqrt(N)
    return start, I, T


def gradient(model, I, T, method) -> np.ndarray:
    return np.ravel(nd.value_and_grad(model, I, T, method=method)[1].weights)


def angle_along(snapshots, I, T, method) -> np.ndarray:
    """Degrees between the method's gradient and the exact one at every snapshot."""
    arrays, static = eqx.partition(snapshots, eqx.is_array)
    angles = []
    for k in range(snapshots.weights.shape[0]):
        model = eqx.combine(jax.tree.map(lambda a: a[k], arrays), static)
        g = gradient(model, I, T, method)
        e = gradient(model, I, T, nd.ImplicitDiff())
        cosine = g @ e / max(np.linalg.norm(g) * np.linalg.norm(e), 1e-300)
        angles.append(np.degrees(np.arccos(np.clip(cosine, -1, 1))))
    return np.asarray(angles)


# The stability demo's unstable learning rate, and the Jacobian penalty's strength.
STABILITY_ETA, PENALTY = 0.6, 0.1


def stabilised(steps: int) -> tuple[dict, dict]:
    """The `stability` demo's linear 2-unit problem by SGD at `STABILITY_ETA`: plain,
    with the Jacobian penalty, and by dW2; the leading eigenvalue along each run
    (a run stops where its fixed points lose stability)."""
    I, T = stability.patterns()
    start = nd.RateNetwork(np.zeros((2, 2)), activation="identity")
    variants = {
        "gradient": {},
        f"gradient + Jacobian penalty {PENALTY}": dict(
            regularizer=nd.JacobianPenalty(PENALTY, probes=16)
        ),
        "dW2": dict(rule=nd.DW2(STABILITY_ETA)),
    }
    traces, losses = {}, {}
    for label, extra in variants.items():
        monitor = nd.StabilityMonitor(I, on_loss="stop")
        run = nd.train(
            start,
            I,
            T,
            optimizer=optax.sgd(STABILITY_ETA),
            steps=steps,
            method=nd.ImplicitDiff(),
            callback=monitor,
            **extra,
        )
        traces[label], losses[label] = monitor.trace(), run.history.E_total
    return traces, losses


# C-EP: the nudging strength, the nudged phase's length (the slowest mode decays
# like exp(-0.97 t)) and the rates, one where C-EP tracks EP and one where it does not.
CEP_BETA, CEP_PHASE, CEP_ETAS = 0.1, 20.0, (0.03, 0.1)


def last(models):
    """The last model of a run's stacked models."""
    arrays, static = eqx.partition(models, eqx.is_array)
    return eqx.combine(jax.tree.map(lambda a: a[-1], arrays), static)


def continual(start, I, T, eta: float, steps: int, every: int) -> dict:
    r"""`steps` phases of C-EP at rate `eta` (each a free phase, then a nudged phase
    with the weights moving) from `start`; against the exact gradient at the
    start of every `every`-th phase: the angle of the update
    $-\Delta\theta/\eta$ and its norm relative to the gradient's."""
    method = nd.ContinualEP(CEP_BETA)
    model, losses, angles, norms, seconds = start, [], [], [], []
    for k in range(steps):
        begin = time.perf_counter()
        run = nd.analog_learning(
            model,
            I,
            T,
            eta=eta,
            t1=CEP_PHASE,
            saveat=np.array([0.0, CEP_PHASE]),
            method=method,
        )
        new = last(jax.block_until_ready(run.model))
        seconds.append(time.perf_counter() - begin)
        losses.append(float(run.loss[0]))
        if k % every == 0:
            update = -np.ravel(np.asarray(new.weights - model.weights)) / eta
            exact = gradient(model, I, T, nd.ImplicitDiff())
            cosine = update @ exact / np.linalg.norm(update) / np.linalg.norm(exact)
            angles.append(np.degrees(np.arccos(np.clip(cosine, -1, 1))))
            norms.append(np.linalg.norm(update) / np.linalg.norm(exact))
        model = new
    losses.append(float(run.loss[-1]))
    return dict(
        model=model,
        E_total=np.asarray(losses),
        angles=np.asarray(angles),
        norms=np.asarray(norms),
        seconds=float(np.median(seconds[1:])) if steps > 1 else seconds[0],
    )


def continual_comparison(start, I, T, steps: int, every: int) -> dict:
    """C-EP and one-sided EP by SGD at each rate of `CEP_ETAS`, from `start`."""
    runs = {}
    for eta in CEP_ETAS:
        sgd = nd.train(
            start,
            I,
            T,
            optimizer=optax.sgd(eta),
            steps=steps,
            method=nd.EquilibriumPropagation(CEP_BETA),
        )
        runs[f"EP beta={CEP_BETA}, SGD {eta}"] = dict(
            model=sgd.model, E_total=np.asarray(sgd.history.E_total)
        )
        runs[f"C-EP beta={CEP_BETA}, eta={eta}"] = continual(
            start, I, T, eta, steps, every
        )
    return runs


def run(out: pathlib.Path, *, small: bool = False) -> dict:
    start_weights, I, T = problem()
    start = network(start_weights)
    steps = 10 if small else 150
    every = 5 if small else 10
    results, angles, leading = {}, {}, {}
    for label, method in METHODS.items():
        results[label] = nd.train(
            start,
            I,
            T,
            optimizer=optax.adam(0.05),
            steps=steps,
            method=method,
            snapshot_every=every,
        )
        history = results[label].history
        angles[label] = angle_along(history.snapshots, I, T, method)
        trained = results[label].model
        fp = nd.relax(trained, I, throw=True)
        leading[label] = float(np.max(np.real(nd.spectrum(trained, fp, I))))
    costs = nd.compare_directions(start, I, T, methods=list(METHODS.values()))
    traces, stability_losses = stabilised(20 if small else 100)
    cep = continual_comparison(start, I, T, steps, every)

    fig, (ax_loss, ax_angle) = plt.subplots(1, 2, figsize=(11, 4))
    plot.learning_curves(
        ax_loss,
        {label: r.history.E_total for label, r in results.items()},
        title="$E_{\\mathrm{total}}$ (Adam 0.05, same start)",
    )
    snapshot_steps = np.asarray(results["exact (ImplicitDiff)"].history.snapshot_steps)
    for label, curve in angles.items():
        ax_angle.plot(snapshot_steps, curve, marker="o", label=label)
    ax_angle.set_xlabel("updates")
    ax_angle.set_ylabel("angle to the exact gradient (degrees)")
    ax_angle.set_title("direction of each method along its own run")
    ax_angle.grid(True, alpha=0.3)
    ax_angle.legend()
    plot.save(fig, out / "learning_rules.png")

    fig, (ax_time, ax_memory) = plt.subplots(1, 2, figsize=(11, 3.8))
    labels = list(METHODS)
    ax_time.barh(labels, [1e3 * c.seconds for c in costs])
    ax_time.set_xlabel("milliseconds per gradient (P = 8 patterns)")
    ax_memory.barh(labels, [c.memory_bytes / 1024 for c in costs])
    ax_memory.set_xlabel("XLA scratch memory (KiB)")
    ax_memory.set_yticklabels([])
    plot.save(fig, out / "costs.png")

    fig, (ax_lead, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    plot.leading_eigenvalue_along(
        ax_lead,
        {label: (np.asarray(t.steps), t.leading) for label, t in traces.items()},
        losses={
            label: None if t.loss is None else t.loss.step
            for label, t in traces.items()
        },
        title=f"stability demo's problem, SGD $\\eta$ = {STABILITY_ETA}",
    )
    plot.learning_curves(ax_loss, stability_losses, title="$E_{\\mathrm{total}}$")
    plot.save(fig, out / "stabilised.png")

    fig, (ax_loss, ax_angle) = plt.subplots(1, 2, figsize=(11, 4))
    plot.learning_curves(
        ax_loss,
        {label: r["E_total"] for label, r in cep.items()},
        title=f"C-EP and EP by SGD, $\\beta$ = {CEP_BETA}",
    )
    for label, r in cep.items():
        if "angles" in r:
            ax_angle.semilogy(
                np.arange(len(r["angles"])) * every,
                np.maximum(r["angles"], 1e-6),
                marker="o",
                label=label,
            )
    ax_angle.set_xlabel("updates (phases)")
    ax_angle.set_ylabel("angle of the C-EP update to the exact gradient (degrees)")
    ax_angle.grid(True, alpha=0.3)
    ax_angle.legend()
    plot.save(fig, out / "continual_ep.png")

    np.savez(out / "params.npz", **model_arrays(results["exact (ImplicitDiff)"].model))
    np.savez(
        out / "params_continual.npz",
        **{label: np.asarray(r["model"].weights) for label, r in cep.items()},
    )
    np.savez(
        out / "params_by_method.npz",
        **{label: np.asarray(r.model.weights) for label, r in results.items()},
    )
    np.savez(out / "data.npz", I=I, T=T, start_weights=start_weights)
    write_json(
        out / "config.json",
        {
            "demo": "learning-rules",
            "model": model_config(start),
            "methods": labels,
            "optimizer": "adam(0.05)",
            "steps": steps,
            "relaxation": relaxation_config(nd.Relaxation()),
        },
    )
    metrics = {
        "steps": steps,
        "methods": {
            label: {
                "final_E_total": float(results[label].history.E_total[-1]),
                "start_E_total": float(results[label].history.E_total[0]),
                "angle_start": float(angles[label][0]),
                "angle_end": float(angles[label][-1]),
                "angle_max": float(np.max(angles[label])),
                "seconds_per_gradient": cost.seconds,
                "memory_bytes": cost.memory_bytes,
                "leading_eigenvalue_end": leading[label],
                "stable": leading[label] < 0,
            }
            for label, cost in zip(labels, costs)
        },
        "continual": {
            "beta": CEP_BETA,
            "phase_length": CEP_PHASE,
            "runs": {
                label: {
                    "start_E_total": float(r["E_total"][0]),
                    "final_E_total": stability.finite_or_none(r["E_total"][-1]),
                    "E_total": [stability.finite_or_none(e) for e in r["E_total"]],
                    **(
                        {
                            "angle_to_exact_along": r["angles"],
                            "relative_norm_along": r["norms"],
                            "seconds_per_update": r["seconds"],
                        }
                        if "angles" in r
                        else {}
                    ),
                }
                for label, r in cep.items()
            },
        },
        "stability_eta": STABILITY_ETA,
        "stability": {
            label: {
                "lost_at_update": None if t.loss is None else int(t.loss.step),
                "leading_real_along": np.real(t.leading[:, 0]),
                "leading_imag_along": np.imag(t.leading[:, 0]),
                "final_E_total": stability.finite_or_none(stability_losses[label][-1]),
            }
            for label, t in traces.items()
        },
    }
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
