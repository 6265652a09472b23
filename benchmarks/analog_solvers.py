r"""Benchmark: explicit against implicit solvers for the analog learning system.

`nd.analog_learning` integrates activity $x_a$, error signal $z_a$ of every pattern
and the weights $W$ as one ODE. $x$ and $z$ relax on the time scale $\tau = 1$, the
weights move at rate $\eta$. At a fixed amount of learning $\eta\, t_1$ (the same
weight change whatever $\eta$), a smaller $\eta$ means a longer run, $t_1 \propto
1/\eta$, spent mostly with $x, z$ at rest: an explicit solver's step is then capped by
the stability of the fast relaxation, so its steps grow like $1/\eta$, while an
implicit solver's steps are set by the slow weights alone.

For $\eta = 10^{-1} \dots 10^{-4}$ this script runs, on two small problems (the XOR
network of the `analog-xor` demo, 7 units and 4 patterns, and a random first-order
network of 10 units and 5 patterns), in float64 and in float32:

- explicit: `diffrax.Tsit5()`, `diffrax.Dopri5()`, `diffrax.Dopri8()`;
- implicit: `diffrax.Kvaerno5()` with diffrax's default root finder `VeryChord` (one
  Jacobian per step) and with `optimistix.Chord` (one Jacobian per stage);
- IMEX: `diffrax.KenCarp4()` and `diffrax.KenCarp5()` with `optimistix.Chord`, given
  the weight dynamics as the explicit term and the relaxation of $x, z$ as the
  implicit term (`analog_learning` splits the system so for any IMEX solver);
- `analog_learning`'s default (`method=None`): on these sizes and rates the
  full system with Tsit5 for eta >= 3e-3, else the slow manifold
  (`neurodyn._learning.analog.default_method`; see benchmarks/analog_scale.py).

Every call is `nd.analog_learning(net, I, T, eta=eta, t1=L / eta, saveat=[t1],
solver=...)`, at the default tolerances in float64 (rtol 1e-6, atol 1e-8) and at
rtol 1e-5, atol 1e-6 in float32 (see `TOLERANCES`); its time includes
the one relaxation of every pattern that gives the final loss. A first call compiles
(the learning rate is traced, so one compilation serves every $\eta$); then the
median of `--repeats` calls around `jax.block_until_ready` is taken (one call only if
it takes over `--cap-seconds`). Reported: steps (accepted + rejected, and rejected),
median time, its ratio to Tsit5 at the same problem, precision and $\eta$, the final
loss $E_{\text{total}}$ and the largest deviation of the final weights from the
float64 Tsit5 run, relative to the largest weight change.

Run with `make bench-analog` or `.venv/bin/python benchmarks/analog_solvers.py --help`.
"""

import argparse
import datetime
import multiprocessing
import os
import statistics
import sys
import time
import timeit
from dataclasses import dataclass


# One BLAS thread: the implicit solvers' LU factorisations otherwise compete with
# XLA's threads (see docs/benchmarks.md). It must be set before jax loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402
from _machine import machine  # noqa: E402


# Versions printed with the machine.
PACKAGES = ["jax", "diffrax", "equinox", "optimistix"]

import neurodyn as nd  # noqa: E402
from neurodyn._demos.xor import xor_network, xor_patterns  # noqa: E402


def chord() -> optx.AbstractRootFinder:
    """Chord's Newton iteration, at the step-size controller's tolerances."""
    return diffrax.with_stepsize_controller_tols(optx.Chord)()


SOLVERS = {
    "Tsit5": lambda: diffrax.Tsit5(),
    "Dopri5": lambda: diffrax.Dopri5(),
    "Dopri8": lambda: diffrax.Dopri8(),
    "Kvaerno5 (VeryChord)": lambda: diffrax.Kvaerno5(),
    "Kvaerno5 (Chord)": lambda: diffrax.Kvaerno5(root_finder=chord()),
    "KenCarp4 IMEX (Chord)": lambda: diffrax.KenCarp4(root_finder=chord()),
    "KenCarp5 IMEX (Chord)": lambda: diffrax.KenCarp5(root_finder=chord()),
    "default (method=None)": lambda: None,
}
REFERENCE = "Tsit5"
DTYPES = {"float64": jnp.float64, "float32": jnp.float32}
# (rtol, atol) per precision: the defaults in float64. In float32 an atol of 1e-8 lies
# below the resolution of O(1) states, and the implicit solvers' Newton iterations
# then fail to converge: steps are rejected until `max_steps` (see
# docs/analog_solvers.md), so float32 runs at 1e-5, 1e-6.
TOLERANCES = {"float64": (1e-6, 1e-8), "float32": (1e-5, 1e-6)}


@dataclass
class Outcome:
    """One `analog_learning` call: its work, time and result (NaN if it failed)."""

    steps: int
    rejected: int
    seconds: list[float]
    loss: float
    weights: np.ndarray | None
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def xor_problem():
    """The `analog-xor` demo's network and patterns (7 units, 4 patterns)."""
    I, T = xor_patterns()
    return xor_network(), I, T


def random_problem(n: int = 10, p: int = 5, seed: int = 0):
    """A random first-order network, inputs on every unit, the last 3 outputs."""
    rng = np.random.default_rng(seed)
    net = nd.FirstOrderNetwork(
        1.5 * rng.standard_normal((n, n)) / np.sqrt(n),
        output_units=np.arange(n) >= n - 3,
    )
    I = rng.uniform(-1.0, 1.0, (p, n))
    T = rng.uniform(0.1, 0.9, (p, n))
    return net, I, T


PROBLEMS = {"XOR (N=7, P=4)": xor_problem, "random (N=10, P=5)": random_problem}


def cast(problem, dtype):
    """The network and patterns with every floating array in `dtype`."""
    net, I, T = problem
    net = jax.tree.map(
        lambda leaf: jnp.asarray(leaf, dtype) if eqx.is_inexact_array(leaf) else leaf,
        net,
    )
    return net, jnp.asarray(I, dtype), jnp.asarray(T, dtype)


def run_once(net, I, T, eta: float, solver, args) -> nd.AnalogRun:
    t1 = args.learning / eta
    rtol, atol = TOLERANCES[str(I.dtype)]
    run = nd.analog_learning(
        net,
        I,
        T,
        eta=eta,
        t1=t1,
        saveat=jnp.array([t1], I.dtype),
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=args.max_steps,
    )
    return jax.block_until_ready(run)


def measure(net, I, T, eta, solver, args) -> Outcome:
    """Time one (problem, precision, solver, eta) after the compiling call."""

    def call():
        return run_once(net, I, T, eta, solver, args)

    try:
        run = call()
        seconds = timeit.repeat(call, number=1, repeat=1)
        if seconds[0] <= args.cap_seconds and args.repeats > 1:
            seconds += timeit.repeat(call, number=1, repeat=args.repeats - 1)
    except Exception as error:  # report the failure, go on with the others
        message = str(error).strip().splitlines()[0][:80]
        return Outcome(-1, -1, [], float("nan"), None, message)
    return Outcome(
        int(run.stats["num_steps"]),
        int(run.stats["num_rejected_steps"]),
        seconds,
        float(run.loss[-1]),
        np.asarray(run.model.weights[-1], dtype=np.float64),
    )


def fmt_ms(seconds: float) -> str:
    return "—" if np.isnan(seconds) else f"{1e3 * seconds:,.1f}"


def weight_deviation(outcome: Outcome, reference: Outcome, start: np.ndarray) -> str:
    r"""$\max|W - W_\mathrm{ref}| / \max|W_\mathrm{ref} - W_0|$ as text."""
    if outcome.weights is None or reference.weights is None:
        return "—"
    change = np.max(np.abs(reference.weights - start))
    return f"{np.max(np.abs(outcome.weights - reference.weights)) / change:.0e}"


def tables(results, args, starts) -> list[str]:
    """The side-by-side tables: time and ratio, steps, and final loss/agreement."""
    etas = args.etas
    head = "| problem | dtype | solver |" + "".join(f" η={eta:g} |" for eta in etas)
    rule = "|:--|:--|:--|" + "--:|" * len(etas)
    time_rows, step_rows, loss_rows = [head, rule], [head, rule], [head, rule]
    for problem in PROBLEMS:
        for dtype in args.dtypes:
            for solver in args.solvers:
                label = f"| {problem} | {dtype} | {solver} |"
                time_cells, step_cells, loss_cells = "", "", ""
                for eta in etas:
                    outcome = results[(problem, dtype, solver)][eta]
                    if outcome.error:
                        time_cells += " failed |"
                        step_cells += " failed |"
                        loss_cells += " failed |"
                        continue
                    base = results[(problem, dtype, REFERENCE)][eta]
                    reference = results[(problem, "float64", REFERENCE)][eta]
                    ratio = outcome.median / base.median
                    time_cells += f" {fmt_ms(outcome.median)} ({ratio:.2g}×) |"
                    step_cells += f" {outcome.steps:,} ({outcome.rejected:,}) |"
                    deviation = weight_deviation(outcome, reference, starts[problem])
                    loss_cells += f" {outcome.loss:.5f} / {deviation} |"
                time_rows.append(label + time_cells)
                step_rows.append(label + step_cells)
                loss_rows.append(label + loss_cells)
    return [
        "Median wall time in ms (ratio to Tsit5, same problem, dtype and η):",
        "",
        *time_rows,
        "",
        "Solver steps, accepted + rejected (rejected):",
        "",
        *step_rows,
        "",
        "Final loss E_total / max|W - W_ref| over max|W_ref - W_0|, W_ref = the "
        "float64 Tsit5 run:",
        "",
        *loss_rows,
    ]


def failures(results) -> list[str]:
    lines = []
    for (problem, dtype, solver), by_eta in results.items():
        for eta, outcome in by_eta.items():
            if outcome.error:
                lines.append(
                    f"- {problem}, {dtype}, {solver}, η={eta:g}: {outcome.error}"
                )
    return ["", "Failures:", "", *lines] if lines else []


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Steps, time and final loss of explicit, implicit and IMEX "
        "solvers for nd.analog_learning, at a fixed amount of learning eta * t1."
    )
    parser.add_argument(
        "--etas", type=float, nargs="+", default=[1e-1, 1e-2, 1e-3, 1e-4]
    )
    parser.add_argument(
        "--learning", type=float, default=10.0, help="eta * t1, the same for every eta"
    )
    parser.add_argument("--solvers", nargs="+", choices=list(SOLVERS), default=None)
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=None)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (median)")
    parser.add_argument(
        "--cap-seconds",
        type=float,
        default=3.0,
        help="time a call only once if it takes longer than this",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=200_000,
        help="solver steps before a run counts as failed",
    )
    parser.add_argument("--out", help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.solvers = args.solvers or list(SOLVERS)
    if REFERENCE not in args.solvers:
        args.solvers.insert(0, REFERENCE)
    args.dtypes = args.dtypes or list(DTYPES)
    if "float64" not in args.dtypes:
        args.dtypes.insert(0, "float64")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_precision(dtype: str, args: argparse.Namespace) -> dict:
    """Every problem, solver and eta in one precision. Run in a fresh process: float32
    as users run it, with 64-bit types off (diffrax's times included), and no state
    left by the float64 runs."""
    jax.config.update("jax_enable_x64", dtype == "float64")
    results = {}
    for problem, make in PROBLEMS.items():
        net, I, T = cast(make(), DTYPES[dtype])
        for solver in args.solvers:
            log(f"{problem}, {dtype}, {solver}")
            results[(problem, dtype, solver)] = {
                eta: measure(net, I, T, eta, SOLVERS[solver](), args)
                for eta in args.etas
            }
    return results


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    starts = {
        problem: np.asarray(make()[0].weights, dtype=np.float64)
        for problem, make in PROBLEMS.items()
    }
    results = {}
    for dtype in args.dtypes:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            results.update(pool.apply(run_precision, (dtype, args)))
    minutes = (time.perf_counter() - start) / 60
    text = "\n".join(
        [
            f"Analog learning solvers, {datetime.date.today().isoformat()}: "
            f"{machine(PACKAGES)}.",
            f"Fixed learning η·t1 = {args.learning:g}; (rtol, atol) = "
            + ", ".join(f"{(*TOLERANCES[d],)} in {d}" for d in args.dtypes)
            + f"; median of up to {args.repeats} timed calls; OPENBLAS_NUM_THREADS="
            f"{os.environ['OPENBLAS_NUM_THREADS']}; whole run {minutes:.1f} min.",
            "",
            *tables(results, args, starts),
            *failures(results),
        ]
    )
    print(text)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
