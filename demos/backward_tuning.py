"""Demo `backward-tuning`: reverse engineering of discrete-time recurrent networks by
backward tuning (Alexandre et al., figures 6-9), beside BPTT + Adam.

Every run learns a root network's unit-0 output with a randomly initialised learner.
The run folder holds, per run `R`, `params.npz[R__weights, R__connectivity]` and
`data.npz[R__inputs, R__targets, R__gains, R__clean]` and
`history.npz[R__criterion, R__kinds]` (criterion before each iteration, step kinds;
`R__bptt_adam` for the figure-6 comparisons); `config.json` names each run's unit
type and criterion with their constants, and `metrics.json["final_criterion"]` the
criterion each run ended with.
"""

import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import neurodyn.discrete as ndd
from neurodyn import plot
from neurodyn._runs import write_json


UNITS = {
    "L": ndd.Linear(),
    "LNL": ndd.LinearNonLinear(),
    "AIF": ndd.IntegrateAndFire(),
    "SoftMax": ndd.SoftMax(),
}
CRITERIA = {
    "2": ndd.L2(),
    "1": ndd.ReweightedL1(),
    "0": ndd.ReweightedL0(),
    "a": ndd.AbsoluteValue(),
    "b": ndd.Biweight(),
}
TOLERANCE, MAX_ITERATIONS = 1e-6, 101


def constants(strategy) -> dict:
    """A unit type's or criterion's name and constants, for `config.json`."""
    fields = {f.name: getattr(strategy, f.name) for f in dataclasses.fields(strategy)}
    return {"class": type(strategy).__name__, "name": strategy.name, **fields}


class Runs:
    """Collects every run's arrays, configuration and final criterion."""

    def __init__(self):
        self.params, self.data, self.config, self.final = {}, {}, {}, {}
        self.history = {}

    def add(self, name, problem, result, criterion):
        net = result.network
        self.params[f"{name}__weights"] = np.asarray(net.weights)
        self.params[f"{name}__connectivity"] = np.asarray(net.connectivity)
        self.data[f"{name}__inputs"] = np.asarray(problem.inputs)
        self.data[f"{name}__targets"] = np.asarray(problem.targets)
        self.data[f"{name}__gains"] = np.ones(problem.targets.shape)
        self.data[f"{name}__clean"] = np.asarray(problem.clean)
        self.config[name] = {
            "unit": constants(net.unit),
            "criterion": constants(criterion),
        }
        self.final[name] = float(result.value)
        self.history[f"{name}__criterion"] = np.asarray(result.history)
        self.history[f"{name}__kinds"] = np.asarray(result.kinds)


def timed(learn, problem, max_iterations):
    """`learn` (`ndd.adjust` or `ndd.bptt_adam`) on a problem; returns the result
    and the wall time of a warm (already compiled) call."""
    args = (problem.learner, problem.inputs, problem.targets)
    kwargs = dict(tolerance=TOLERANCE, max_iterations=max_iterations)
    jax.block_until_ready(learn(*args, **kwargs))
    start = time.perf_counter()
    result = jax.block_until_ready(learn(*args, **kwargs))
    return result, time.perf_counter() - start


def adjust(problem, **options):
    """`ndd.adjust` on a problem at the demo's tolerance and iteration cap."""
    return ndd.adjust(
        problem.learner,
        problem.inputs,
        problem.targets,
        tolerance=TOLERANCE,
        max_iterations=MAX_ITERATIONS,
        **options,
    )


def rms(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def learned_output(net, problem):
    return ndd.simulate(net, problem.inputs).x[:, :1]


def figure6(runs, units, sizes, length, adam_iterations):
    table, histories = {}, {}
    for name in units:
        rows = {k: [] for k in ("N", "iterations", "minimal_criterion")}
        rows.update({k: [] for k in ("decay_time", "final_bias", "converged")})
        rows.update({k: [] for k in ("seconds", "seconds_per_iteration")})
        adam = {k: [] for k in ("iterations", "final_criterion", "converged")}
        adam.update({"seconds": [], "seconds_per_iteration": []})
        for n in sizes:
            problem = ndd.reverse_engineering_problem(
                UNITS[name], n, length=length, seed=n
            )
            result, seconds = timed(ndd.adjust, problem, MAX_ITERATIONS)
            history = np.asarray(result.history)
            iterations = int(result.iterations)
            tau, bias = ndd.decay_fit(history[: iterations + 1])
            for key, value in zip(
                rows,
                (
                    n,
                    iterations,
                    float(np.nanmin(history)),
                    tau,
                    bias,
                    bool(result.converged),
                    seconds,
                    seconds / max(iterations, 1),
                ),
            ):
                rows[key].append(value)
            runs.add(f"fig6_{name}_N{n}", problem, result, CRITERIA["2"])
            histories[(name, n)] = (history, np.asarray(result.kinds))
            a, a_seconds = timed(ndd.bptt_adam, problem, adam_iterations)
            adam["iterations"].append(int(a.iterations))
            adam["final_criterion"].append(float(a.value))
            adam["converged"].append(bool(a.converged))
            adam["seconds"].append(a_seconds)
            adam["seconds_per_iteration"].append(a_seconds / max(int(a.iterations), 1))
            histories[(name, n, "adam")] = np.asarray(a.history)
            runs.history[f"fig6_{name}_N{n}__bptt_adam"] = np.asarray(a.history)
        table[name] = {**rows, "bptt_adam": adam}
    return table, histories


def figure8(runs, n, length, samples):
    rows = {"sample": [], "iterations": [], "minimal_criterion": [], "converged": []}
    for sample in range(1, samples + 1):
        problem = ndd.reverse_engineering_problem(
            UNITS["LNL"], n, length=length, seed=1000 + sample
        )
        result = adjust(problem)
        rows["sample"].append(sample)
        rows["iterations"].append(int(result.iterations))
        rows["minimal_criterion"].append(float(np.nanmin(np.asarray(result.history))))
        rows["converged"].append(bool(result.converged))
        runs.add(f"fig8_sample{sample}", problem, result, CRITERIA["2"])
    return {"unit": "LNL", "N": n, **rows}


def figure9(runs, n, length, criteria):
    corruptions = {
        "noise": dict(noise=0.1),
        "outliers": dict(outlier_probability=0.05, outlier_magnitude=10.0),
    }
    table = {}
    for corruption, options in corruptions.items():
        problem = ndd.reverse_engineering_problem(
            UNITS["LNL"], n, length=length, seed=7, **options
        )
        rows = {k: [] for k in ("criterion", "iterations", "minimal_criterion")}
        rows.update({"rms_error_to_clean": [], "rms_error_initial": []})
        initial = rms(learned_output(problem.learner, problem), problem.clean)
        for key in criteria:
            result = adjust(problem, criterion=CRITERIA[key])
            rows["criterion"].append(key)
            rows["iterations"].append(int(result.iterations))
            rows["minimal_criterion"].append(
                float(np.nanmin(np.asarray(result.history)))
            )
            rows["rms_error_to_clean"].append(
                rms(learned_output(result.network, problem), problem.clean)
            )
            rows["rms_error_initial"].append(initial)
            runs.add(f"fig9_{corruption}_{key}", problem, result, CRITERIA[key])
        table[corruption] = {"unit": "LNL", "N": n, **options, **rows}
    return table


def observable_fit(runs, n, length):
    """Fit the mean, second moment and lag-1 product of a random (uniform, white)
    output sequence, as the paper's last test of section 4."""
    criterion = ndd.ObservableFit(lags=(0, 1))
    problem = ndd.reverse_engineering_problem(UNITS["LNL"], n, length=length, seed=3)
    target = np.random.default_rng(3).uniform(-0.5, 0.5, size=(length, 1))
    problem = dataclasses.replace(problem, targets=jnp.asarray(target))
    gains = jnp.ones_like(problem.targets)
    result = adjust(problem, criterion=criterion)
    runs.add("observable", problem, result, criterion)
    out = learned_output(result.network, problem)
    return {
        "unit": "LNL",
        "N": n,
        "observables": ["mean", "lag 0 product", "lag 1 product"],
        "desired": np.asarray(criterion.observables(problem.targets, gains))[:, 0],
        "produced": np.asarray(criterion.observables(out, gains))[:, 0],
        "initial_criterion": float(np.asarray(result.history)[0]),
        "final_criterion": float(result.value),
        "iterations": int(result.iterations),
    }


def decay_figure(path, histories, units, n):
    """Figure 7: criterion decay in log coordinates, backward tuning (filled markers:
    second-order steps, open: first-order fall-backs) beside BPTT + Adam; the
    iteration axis is logarithmic so that Adam's thousands of updates fit."""
    fig, axes = plt.subplots(1, len(units), figsize=(5.5 * len(units), 4))
    for ax, name in zip(np.atleast_1d(axes), units):
        history, kinds = histories[(name, n)]
        k = np.arange(1, history.size + 1)
        ax.loglog(k, history, color="k", lw=1, label="backward tuning")
        for kind, style, label in ((1, "o", "2nd order"), (2, "s", "1st order")):
            steps = np.flatnonzero(kinds[: history.size] == kind)
            ax.loglog(
                k[steps],
                history[steps],
                style,
                ms=4,
                mfc="C0" if kind == 1 else "none",
                mec="C0",
                label=f"{label} step",
            )
        adam = histories[(name, n, "adam")]
        ax.loglog(
            np.arange(1, adam.size + 1), adam, color="C3", lw=1, label="BPTT + Adam"
        )
        ax.axhline(TOLERANCE, color="gray", ls=":", lw=1)
        ax.axvline(MAX_ITERATIONS, color="gray", ls="--", lw=0.8)
        ax.set_xlabel("iteration + 1")
        ax.set_ylabel("criterion")
        ax.set_title(f"{name}, N = {n}")
        ax.legend(fontsize=8)
    plot.save(fig, path)


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2g}" if abs(value) >= 1 else f"{value:.1e}"
    return str(value)


def markdown(metrics) -> str:
    lines = [
        "# Backward tuning: reverse engineering",
        "",
        f"Criterion below {TOLERANCE:g} stops a run; {MAX_ITERATIONS} iterations "
        "is the cap (as in the paper). Seconds are warm wall time.",
        "",
        "## Figure 6: convergence per unit type and size",
    ]
    for name, t in metrics["figure6"].items():
        a = t["bptt_adam"]
        lines += ["", f"### {name}", "", "| | " + " | ".join(map(str, t["N"])) + " |"]
        lines.append("|---" * (len(t["N"]) + 1) + "|")
        for label, values in (
            ("Number of iterations", t["iterations"]),
            ("Minimal criterion value", t["minimal_criterion"]),
            ("Exponential decay time", t["decay_time"]),
            ("Final bias interpolation", t["final_bias"]),
            ("Seconds", t["seconds"]),
            ("BPTT + Adam iterations", a["iterations"]),
            ("BPTT + Adam final criterion", a["final_criterion"]),
            ("BPTT + Adam seconds", a["seconds"]),
        ):
            lines.append(f"| {label} | " + " | ".join(map(fmt, values)) + " |")
    f8 = metrics["figure8"]
    lines += ["", f"## Figure 8: variability, LNL, N = {f8['N']}", ""]
    lines.append("| Sample index | " + " | ".join(map(str, f8["sample"])) + " |")
    lines.append("|---" * (len(f8["sample"]) + 1) + "|")
    for label, key in (
        ("Number of iterations", "iterations"),
        ("Minimal criterion value", "minimal_criterion"),
    ):
        lines.append(f"| {label} | " + " | ".join(map(fmt, f8[key])) + " |")
    lines += ["", "## Figure 9: robust criteria"]
    for corruption, t in metrics["figure9"].items():
        lines += ["", f"### {corruption}, LNL, N = {t['N']}", ""]
        lines.append("| Criterion | " + " | ".join(t["criterion"]) + " |")
        lines.append("|---" * (len(t["criterion"]) + 1) + "|")
        for label, key in (
            ("Number of iterations", "iterations"),
            ("Minimal criterion value", "minimal_criterion"),
            ("RMS error to the clean output", "rms_error_to_clean"),
        ):
            lines.append(f"| {label} | " + " | ".join(map(fmt, t[key])) + " |")
    o = metrics["observable"]
    lines += ["", f"## Observable fit, LNL, N = {o['N']}", ""]
    lines.append("| | " + " | ".join(o["observables"]) + " |")
    lines.append("|---|---|---|---|")
    lines.append("| desired | " + " | ".join(map(fmt, o["desired"])) + " |")
    lines.append("| produced | " + " | ".join(map(fmt, o["produced"])) + " |")
    lines += [
        "",
        f"Criterion {fmt(o['initial_criterion'])} -> {fmt(o['final_criterion'])} in "
        f"{o['iterations']} iterations.",
    ]
    return "\n".join(lines) + "\n"


def run(out: pathlib.Path, *, small: bool = False) -> dict:
    """The benchmark in float64, as the paper (its guard constants assume it)."""
    with jax.enable_x64(True):
        return benchmark(out, small=small)


def benchmark(out: pathlib.Path, *, small: bool) -> dict:
    units = ("LNL", "AIF") if small else tuple(UNITS)
    sizes = (2,) if small else (2, 4, 8, 16, 32, 64)
    length = 20 if small else 100
    n_detail = 2 if small else 8
    criteria = ("1",) if small else tuple(CRITERIA)
    runs = Runs()
    table6, histories = figure6(
        runs, units, sizes, length, adam_iterations=2000 if small else 5000
    )
    metrics = {
        "tolerance": TOLERANCE,
        "max_iterations": MAX_ITERATIONS,
        "sequence_length": length,
        "figure6": table6,
        "figure8": figure8(runs, n_detail, length, samples=3 if small else 7),
        "figure9": figure9(runs, n_detail, length, criteria),
        "observable": observable_fit(runs, 2 if small else 4, length),
    }
    metrics["final_criterion"] = runs.final
    decay_figure(out / "criterion_decay.png", histories, ("LNL", "AIF"), n_detail)
    np.savez(out / "params.npz", **runs.params)
    np.savez(out / "data.npz", **runs.data)
    np.savez(out / "history.npz", **runs.history)
    write_json(
        out / "config.json",
        {
            "demo": "backward-tuning",
            "sequence_length": length,
            "tolerance": TOLERANCE,
            "max_iterations": MAX_ITERATIONS,
            "runs": runs.config,
        },
    )
    (out / "tables.md").write_text(markdown(metrics))
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
