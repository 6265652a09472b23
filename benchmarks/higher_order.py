r"""Benchmark: time and memory of one gradient of a second-order network.

For a second-order network (Pineda eqs 21, 22)

$$\tau\, dx_i/dt = -x_i + g\Big(\sum_{jk} w_{ijk} f(x_j) f(x_k)\Big) + I_i$$

with $N$ units (logistic $g$ and $f$, every unit an input and an output unit) and a
batch of $P$ patterns, this script measures, in float32 on the default JAX device,
the forward relaxation `nd.relax` and `nd.value_and_grad` for the three gradient
methods:

- time: one compiling call, then the minimum and median of `timeit.repeat` around
  `jax.block_until_ready`;
- memory: XLA's compiled memory analysis of the jitted call (`temp` = the scratch
  buffers of the whole program, `out` = its results), next to the size of the weight
  tensor $W$ ($4N^3$ bytes), since the gradient should need $O(|W|)$ memory, not
  $O(P\,|W|)$ or $O(N^4)$.

Problem: $W = 0.5\,\mathrm{randn}(N,N,N)/N$, $I \sim U(-1,1)$, $T \sim U(0.1,0.9)$ of
shape $(P, N)$, default tolerances (rtol 1e-6, atol 1e-8).

Run with `.venv/bin/python benchmarks/higher_order.py [--sizes 16 32 64]
[--patterns 8] [--out table.md]`.
"""

import argparse
import datetime
import os
import statistics
import sys
import time
import timeit


os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see benchmarks/gradients.py

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import neurodyn as nd  # noqa: E402


METHODS = {
    "RecurrentBackprop": nd.RecurrentBackprop(),
    "ImplicitDiff": nd.ImplicitDiff(),
    "UnrolledBPTT": nd.UnrolledBPTT(),
}


def make_problem(n: int, p: int, seed: int):
    rng = np.random.default_rng(seed + n)
    weights = 0.5 * rng.standard_normal((n, n, n)) / n
    net = nd.HigherOrderNetwork(jnp.asarray(weights, dtype=jnp.float32))
    I = jnp.asarray(rng.uniform(-1.0, 1.0, (p, n)), dtype=jnp.float32)
    T = jnp.asarray(rng.uniform(0.1, 0.9, (p, n)), dtype=jnp.float32)
    return net, I, T


def memory(fn, net) -> tuple[int, int]:
    """(temp, output) bytes of the compiled `fn(net)`, by XLA's memory analysis
    (the weights are the traced argument)."""

    def of_weights(w):
        return fn(eqx.tree_at(lambda m: m.weights, net, w))

    analysis = jax.jit(of_weights).lower(net.weights).compile().memory_analysis()
    return int(analysis.temp_size_in_bytes), int(analysis.output_size_in_bytes)


def time_call(fn, repeats: int) -> tuple[float, float, float]:
    """(first call, min, median) wall times in seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    runs = timeit.repeat(fn, number=1, repeat=repeats)
    return first, min(runs), statistics.median(runs)


def bench_size(n, p, repeats, seed, log):
    net, I, T = make_problem(n, p, seed)
    calls = {"relax (forward)": lambda m: nd.relax(m, I).x}
    for name, method in METHODS.items():
        calls[name] = lambda m, method=method: nd.value_and_grad(m, I, T, method=method)
    rows, grads = [], {}
    for name, fn in calls.items():
        log(f"N={n}: {name}")
        jitted = eqx.filter_jit(fn)
        first, best, median = time_call(
            lambda jitted=jitted: jax.block_until_ready(jitted(net)), repeats
        )
        temp, out = memory(fn, net)
        rows.append((n, name, best, median, first - best, temp, out))
        if name in METHODS:
            grads[name] = jitted(net)[1].weights
    ref = grads["RecurrentBackprop"]
    agreement = {
        name: float(jnp.max(jnp.abs(g - ref)) / jnp.max(jnp.abs(ref)))
        for name, g in grads.items()
    }
    steps = float(jnp.mean(nd.relax(net, I).num_steps))
    return rows, agreement, steps


def mib(b: float) -> str:
    return f"{b / 2**20:,.2f}"


def report(args, rows, agreements, total) -> str:
    device = jax.devices()[0]
    lines = [
        f"Second-order gradient benchmark, {datetime.date.today().isoformat()}: "
        f"{os.cpu_count()} cores, {device.platform.upper()} `{device.device_kind}`, "
        f"jax {jax.__version__}; float32, P={args.patterns}, seed {args.seed}, "
        f"{args.repeats} timed repeats; whole run {total / 60:.1f} min.",
        "",
        "| N | what | ms (min) | ms (median) | compile s | temp MiB | out MiB "
        "| W MiB | temp / W |",
        "|--:|:-----|---------:|------------:|----------:|---------:|--------:"
        "|------:|---------:|",
    ]
    for n, name, best, median, compile_s, temp, out in rows:
        w = 4 * n**3
        lines.append(
            f"| {n} | {name} | {1e3 * best:,.1f} | {1e3 * median:,.1f} "
            f"| {compile_s:.1f} | {mib(temp)} | {mib(out)} | {mib(w)} "
            f"| {temp / w:.1f} |"
        )
    lines += [
        "",
        "Agreement of `grads.weights` with RecurrentBackprop (max|g - g_ref| / "
        "max|g_ref|) and mean forward solver steps:",
        "",
        "| N | forward steps | ImplicitDiff | UnrolledBPTT |",
        "|--:|--:|--:|--:|",
    ]
    for n, agreement, steps in agreements:
        lines.append(
            f"| {n} | {steps:.1f} | {agreement['ImplicitDiff']:.1e} "
            f"| {agreement['UnrolledBPTT']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--patterns", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", False)
    jax.config.update("jax_enable_compilation_cache", False)

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    rows, agreements = [], []
    for n in args.sizes:
        size_rows, agreement, steps = bench_size(
            n, args.patterns, args.repeats, args.seed, log
        )
        rows += size_rows
        agreements.append((n, agreement, steps))
    text = report(args, rows, agreements, time.perf_counter() - start)
    print(text)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text)


if __name__ == "__main__":
    main()
