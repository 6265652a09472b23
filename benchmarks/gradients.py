r"""Benchmark: the cost of a gradient through a fixed point, by method.

For a first-order network $\tau\, dx/dt = -x + g(Wx) + I$ with $N$ units
(logistic $g$, every unit an input and an output unit) and a batch of $P$ patterns,
this script times, in float32 on the default JAX device:

- the forward relaxation alone, `nd.relax(net, I)`;
- `nd.value_and_grad(net, I, T, method=...)` for the three gradient methods:
  `nd.RecurrentBackprop()` (Pineda's adjoint ODE relaxed to steady state),
  `nd.ImplicitDiff()` (the adjoint by a direct LU solve, lineax) and
  `nd.UnrolledBPTT()` (backpropagation through the diffrax solver).

Each call is run once to compile (its wall time, less the fastest steady call, is
reported as the compile time), then timed with `timeit.repeat` around
`jax.block_until_ready`; the table gives the minimum and the median, and the ratio
of the minimum to that of the forward relaxation. A second table gives the mean
number of forward solver steps and how far each method's `grads.weights` lies from
that of `RecurrentBackprop`, so the methods are seen to compute the same gradient.

`OPENBLAS_NUM_THREADS` defaults to 1 here (see below); set it to compare.

Problem: $W = 0.5\,\mathrm{randn}(N, N)/\sqrt N$, $I \sim U(-1, 1)$ and
$T \sim U(0.1, 0.9)$ of shape $(P, N)$, default tolerances (rtol 1e-6, atol 1e-8).

Run with `make bench` or `.venv/bin/python benchmarks/gradients.py --help`.
"""

import argparse
import datetime
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass


# jaxlib's CPU LAPACK kernels (the LU of `ImplicitDiff`) run on scipy's OpenBLAS,
# whose own threads fight XLA's for the cores: on a 2-core machine a batch of
# 1024 x 1024 LUs then takes 3-10x longer, and varies as much from call to call.
# One BLAS thread unless the caller says otherwise; it must be set before jax loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _machine import machine  # noqa: E402


# Versions printed with the machine.
PACKAGES = ["jax", "diffrax", "equinox", "lineax"]

import neurodyn as nd  # noqa: E402


METHODS = {
    "RecurrentBackprop": nd.RecurrentBackprop(),
    "ImplicitDiff": nd.ImplicitDiff(),
    "UnrolledBPTT": nd.UnrolledBPTT(),
}
REFERENCE = "RecurrentBackprop"
FORWARD = "relax (forward)"


@dataclass
class Timing:
    """Wall times of one benchmarked call, in seconds."""

    first: float
    runs: list[float]
    capped: bool

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def compile(self) -> float:
        """The first call less a steady call: tracing and compilation."""
        return max(self.first - self.best, 0.0)


@dataclass
class Row:
    n: int
    what: str
    timing: Timing


@dataclass
class Agreement:
    n: int
    mean_steps: float
    all_converged: bool
    loss: dict[str, float]
    rel_diff: dict[str, float]


def time_call(fn: Callable[[], object], repeats: int, cap_seconds: float) -> Timing:
    """Time `fn` (which must block until its result is ready): one first call that
    compiles, then up to `repeats` steady calls, only one if a call exceeds
    `cap_seconds`."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    runs = timeit.repeat(fn, number=1, repeat=1)
    capped = runs[0] > cap_seconds and repeats > 1
    if not capped and repeats > 1:
        runs += timeit.repeat(fn, number=1, repeat=repeats - 1)
    return Timing(first, runs, capped)


def make_problem(n: int, p: int, seed: int):
    """The network, sources and targets of the benchmark for `n` units."""
    rng = np.random.default_rng(seed + n)
    weights = 0.5 * rng.standard_normal((n, n)) / np.sqrt(n)
    net = nd.FirstOrderNetwork(jnp.asarray(weights, dtype=jnp.float32))
    I = jnp.asarray(rng.uniform(-1.0, 1.0, (p, n)), dtype=jnp.float32)
    T = jnp.asarray(rng.uniform(0.1, 0.9, (p, n)), dtype=jnp.float32)
    return net, I, T


def max_rel_diff(a: jax.Array, b: jax.Array) -> float:
    r"""$\max|a - b| / \max|b|$: the largest deviation, relative to the scale of
    the reference `b` (elementwise ratios blow up on entries near zero)."""
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def bench_size(n, p, repeats, cap_seconds, seed, log):
    """Time the forward relaxation and the three gradient methods at one size."""
    net, I, T = make_problem(n, p, seed)
    rows = []

    def forward():
        return jax.block_until_ready(nd.relax(net, I).x)

    log(f"N={n}: {FORWARD}")
    rows.append(Row(n, FORWARD, time_call(forward, repeats, cap_seconds)))
    fp = nd.relax(net, I)
    mean_steps = float(jnp.mean(fp.num_steps))
    all_converged = bool(jnp.all(fp.converged))

    results = {}
    for name, method in METHODS.items():

        def gradient(method=method):
            return jax.block_until_ready(nd.value_and_grad(net, I, T, method=method))

        log(f"N={n}: {name}")
        try:
            rows.append(Row(n, name, time_call(gradient, repeats, cap_seconds)))
            results[name] = gradient()
        except Exception as error:  # report the failure, go on with the others
            log(f"N={n}: {name} failed: {type(error).__name__}: {error}")
            failed = Timing(float("nan"), [float("nan")], False)
            rows.append(Row(n, f"{name} (failed)", failed))

    loss = {name: float(E) for name, (E, _) in results.items()}
    rel_diff = {}
    if REFERENCE in results:
        reference = results[REFERENCE][1].weights
        rel_diff = {
            name: max_rel_diff(grads.weights, reference)
            for name, (_, grads) in results.items()
        }
    return rows, Agreement(n, mean_steps, all_converged, loss, rel_diff)


def fmt(value: float, digits: int = 1) -> str:
    return "—" if np.isnan(value) else f"{value:,.{digits}f}"


def timing_table(rows: list[Row]) -> list[str]:
    lines = [
        "| N | what | ms (min) | ms (median) | × relax | compile s | repeats |",
        "|--:|:-----|---------:|------------:|--------:|----------:|--------:|",
    ]
    forward = {row.n: row.timing.best for row in rows if row.what == FORWARD}
    for row in rows:
        t = row.timing
        ratio = t.best / forward[row.n]
        repeats = f"{len(t.runs)}" + (" (capped)" if t.capped else "")
        if np.isnan(t.best):
            repeats = "—"
        lines.append(
            f"| {row.n} | {row.what} | {fmt(1e3 * t.best)} | {fmt(1e3 * t.median)} "
            f"| {fmt(ratio)} | {fmt(t.compile)} | {repeats} |"
        )
    return lines


def agreement_table(agreements: list[Agreement]) -> list[str]:
    others = [name for name in METHODS if name != REFERENCE]
    header = "| N | forward steps (mean) | all converged | E |"
    header += "".join(f" {name} vs {REFERENCE} |" for name in others)
    lines = [header, "|--:|---:|:--:|---:|" + "---:|" * len(others)]
    for a in agreements:
        E = a.loss.get(REFERENCE, float("nan"))
        diffs = "".join(
            f" {a.rel_diff[name]:.1e} |" if name in a.rel_diff else " failed |"
            for name in others
        )
        lines.append(
            f"| {a.n} | {a.mean_steps:.1f} | {'yes' if a.all_converged else 'NO'} "
            f"| {fmt(E, 4)} |{diffs}"
        )
    return lines


def report(args, rows, agreements, total_seconds) -> str:
    cache = "on" if args.compilation_cache else "off"
    capped = [f"{row.what} at N={row.n}" for row in rows if row.timing.capped]
    lines = [
        f"Gradient benchmark, {datetime.date.today()}: {machine(PACKAGES)}.",
        f"float32, P={args.patterns} patterns, seed {args.seed}, up to "
        f"{args.repeats} timed repeats per call; persistent compilation cache "
        f"{cache}; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
        f"whole run {total_seconds / 60:.1f} min.",
        "",
        *timing_table(rows),
        "",
        "`× relax`: minimum time over the forward relaxation's minimum at the same N. "
        "`compile s`: first call less the fastest steady call (tracing + XLA "
        "compilation).",
    ]
    if capped:
        lines.append(
            f"Capped to one timed repeat (a call took over {args.cap_seconds:.0f} s): "
            + ", ".join(capped)
            + "."
        )
    lines += [
        "",
        "Agreement of `grads.weights` with RecurrentBackprop, as "
        "max|g - g_ref| / max|g_ref|; E is the loss at the fixed points:",
        "",
        *agreement_table(agreements),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time nd.relax and nd.value_and_grad for the three gradient "
        "methods of neurodyn, and check that their gradients agree."
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[64, 256, 1024], help="network sizes N"
    )
    parser.add_argument("--patterns", type=int, default=32, help="batch size P")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed calls after the compiling one"
    )
    parser.add_argument(
        "--cap-seconds",
        type=float,
        default=60.0,
        help="time a call only once if it takes longer than this",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compilation-cache",
        action="store_true",
        help="keep JAX's persistent compilation cache (off by default, so that "
        "compile times are cold compiles, not cache loads)",
    )
    parser.add_argument("--out", help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    jax.config.update("jax_enable_x64", False)
    jax.config.update("jax_enable_compilation_cache", args.compilation_cache)

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    rows, agreements = [], []
    for n in args.sizes:
        size_rows, agreement = bench_size(
            n, args.patterns, args.repeats, args.cap_seconds, args.seed, log
        )
        rows += size_rows
        agreements.append(agreement)
    text = report(args, rows, agreements, time.perf_counter() - start)
    print(text)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text)


if __name__ == "__main__":
    main()
