r"""Benchmark: what the stability certificate costs.

Every steady-state strategy ends with the stability certificate
(`neurodyn._solvers.certificate`): a few Arnoldi steps on the linearisation
$(-1 + \partial F/\partial x)/\tau$ at the fixed point, one `jax.linearize` of the
vector field and one Jacobian-vector product per step. This script times, in float32,
for a first-order network $\tau\,dx/dt = -x + g(Wx) + I$ with $N$ units and $P$
patterns, with the default solver and method:

- `nd.value_and_grad(net, I, T)` with the certificate (the default) and without it
  (`attractors_only=False`);
- `nd.relax(net, I)` the same two ways.

Calls with and without the certificate alternate (ABAB...), so that a change in the
machine's load hits both; the table gives the minimum and the median of each and
their ratios, by wall time and by the CPU time of this process (steadier when other
processes share the cores). Problems: *contracting*,
$W = 0.5\,\mathrm{randn}(N,N)/\sqrt N$ (the default's plain iteration settles), and
*skew*, $W = 3(A - A^T)/\sqrt N$ (stable, not contracting: the plain iteration gives
up and Anderson settles); $I \sim U(-1, 1)$, $T \sim U(0.1, 0.9)$, default
tolerances.

Run with `make bench-certificate` or `.venv/bin/python benchmarks/certificate.py
--help`.
"""

import argparse
import datetime
import os
import statistics
import sys
import time


# One BLAS thread unless the caller says otherwise (see benchmarks/gradients.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _machine import load_average, machine  # noqa: E402

import neurodyn as nd  # noqa: E402
from neurodyn._solvers.certificate import ARNOLDI_STEPS  # noqa: E402


PACKAGES = ["jax", "diffrax", "equinox", "lineax", "optimistix"]
REGIMES = ("contracting", "skew")
# Wall time, and the CPU time of this process (all its threads): the latter does not
# count the time other processes hold the cores, so it is steadier on a busy machine.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def make_problem(regime: str, n: int, p: int, seed: int):
    """The network, sources and targets of one regime, in float32."""
    rng = np.random.default_rng(seed + n)
    A = rng.standard_normal((n, n))
    weights = (0.5 * A if regime == "contracting" else 3 * (A - A.T)) / np.sqrt(n)
    net = nd.FirstOrderNetwork(jnp.asarray(weights, dtype=jnp.float32))
    I = jnp.asarray(rng.uniform(-1.0, 1.0, (p, n)), dtype=jnp.float32)
    T = jnp.asarray(rng.uniform(0.1, 0.9, (p, n)), dtype=jnp.float32)
    return net, I, T


def paired_times(with_, without, rounds: int, clock) -> tuple[list, list]:
    """Times of the two calls by `clock`, alternated over `rounds` rounds after one
    compiling call of each."""
    with_()
    without()
    a, b = [], []
    for _ in range(rounds):
        for fn, times in ((with_, a), (without, b)):
            start = clock()
            fn()
            times.append(clock() - start)
    return a, b


def row(regime, n, what, clock, on, off) -> str:
    """One table row: minimum and median of each, their ratios."""

    def ms(times, statistic):
        return f"{1e3 * statistic(times):,.1f}"

    ratios = [x / y for x, y in zip(on, off)]
    return (
        f"| {regime} | {n} | {what} | {clock} | {ms(off, min)} | {ms(on, min)} "
        f"| {min(on) / min(off):.3f} | {ms(off, statistics.median)} "
        f"| {ms(on, statistics.median)} | {statistics.median(ratios):.3f} |"
    )


def bench(regime, n, p, rounds, seed, log) -> list[str]:
    net, I, T = make_problem(regime, n, p, seed)
    fp = nd.relax(net, I)
    if not bool(jnp.all(fp.converged)):
        raise RuntimeError(f"{regime}, N={n}: the default did not settle: {fp.result}")
    steps = float(jnp.mean(fp.num_steps))

    def gradient(certify):
        return lambda: jax.block_until_ready(
            nd.value_and_grad(
                net, I, T, relaxation=nd.Relaxation(attractors_only=certify)
            )
        )

    def forward(certify):
        return lambda: jax.block_until_ready(
            nd.relax(net, I, relaxation=nd.Relaxation(attractors_only=certify)).x
        )

    lines = []
    for what, call in (("value_and_grad", gradient), ("relax", forward)):
        for clock, fn in CLOCKS.items():
            log(f"{regime}, N={n}: {what}, {clock}")
            on, off = paired_times(call(True), call(False), rounds, fn)
            lines.append(row(regime, n, what, clock, on, off))
    log(f"{regime}, N={n}: mean forward steps {steps:.1f}")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Time nd.value_and_grad and nd.relax with and without the "
        "stability certificate."
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--patterns", type=int, default=32, help="batch size P")
    parser.add_argument("--rounds", type=int, default=20, help="timed pairs")
    parser.add_argument("--regimes", nargs="+", choices=REGIMES, default=REGIMES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", False)

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    start, load_before = time.perf_counter(), load_average()
    lines = [
        "| regime | N | call | clock | ms without (min) | ms with (min) | ratio (min) "
        "| ms without (median) | ms with (median) | ratio (median of pairs) |",
        "|:--|--:|:--|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for regime in args.regimes:
        for n in args.sizes:
            lines += bench(regime, n, args.patterns, args.rounds, args.seed, log)
    now = datetime.datetime.now(datetime.timezone.utc)
    text = "\n".join(
        [
            f"Certificate benchmark, {now:%Y-%m-%d %H:%M} UTC: {machine(PACKAGES)}.",
            f"float32, P={args.patterns}, {ARNOLDI_STEPS} Arnoldi steps, "
            f"{args.rounds} alternated pairs per row after a compiling call; "
            f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; load "
            f"average {load_before} at the start, {load_average()} at the end; "
            f"whole run {(time.perf_counter() - start) / 60:.1f} min.",
            "",
            *lines,
        ]
    )
    print(text)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
