r"""Benchmark: `nd.find_fixed_points` from 1000 starts on a 100-unit network.

The network is a Hopfield-type first-order network $\tau\,dx/dt = -x + \tanh(Wx)$
storing $P$ random $\pm1$ patterns, $W = \frac{\beta}{N}\sum_\mu \xi^\mu
\xi^{\mu T} + \frac{\sigma}{\sqrt N} G$ with a small asymmetric Gaussian part $G$
($\beta = 1.5$, $\sigma = 0.1$): its landscape holds the stored patterns (and their
negatives) as attractors, mixture states and saddles between them. The starts are
half uniform in $[-1, 1]^N$ and half visited states (relaxation trajectories from
noisy patterns) with noise, `nd.starts_near`.

The script prints the cold call (compilation included), then the minimum and the
median of `--repeats` timed calls (`jax.block_until_ready` around the whole call,
dedup and eigendecomposition included), the least CPU time of this process (steadier
when other processes share the cores), the time per start and what was found. The
machine's load makes the timings noisy: compare minima. `--plot PATH` saves the
landscape in its first two principal components.

Run with `make bench-landscape` or `.venv/bin/python benchmarks/landscape.py
--help`.
"""

import argparse
import os
import statistics
import time


# One BLAS thread unless the caller says otherwise (see benchmarks/gradients.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

import neurodyn as nd  # noqa: E402


def network(n: int, patterns: int, seed: int):
    rng = np.random.default_rng(seed)
    xi = rng.choice([-1.0, 1.0], size=(patterns, n))
    W = 1.5 / n * xi.T @ xi + 0.1 * rng.normal(size=(n, n)) / np.sqrt(n)
    return nd.FirstOrderNetwork(W, activation=nd.tanh), xi


def starts(net, xi, count: int, seed: int):
    """Half uniform in [-1, 1]^N, half near the states visited by relaxations from
    noisy patterns."""
    rng = np.random.default_rng(seed)
    n = net.n_units
    signed = np.concatenate([xi, -xi])
    cues = np.repeat(signed, 2, axis=0) + 0.8 * rng.normal(size=(4 * len(xi), n))
    visited = nd.trajectory(net, np.zeros_like(cues), np.linspace(0, 10, 21), x0=cues)
    near = nd.starts_near(visited, count - count // 2, noise=0.05, seed=seed)
    uniform = rng.uniform(-1.0, 1.0, size=(count // 2, n))
    return np.concatenate([uniform, np.asarray(near)]), visited


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--starts", type=int, default=1000)
    parser.add_argument("--patterns", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--float32", action="store_true", help="default float64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the landscape figure here")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", not args.float32)

    net, xi = network(args.units, args.patterns, args.seed)
    I = np.zeros(args.units)
    x0, visited = starts(net, xi, args.starts, args.seed)

    def call():
        found = nd.find_fixed_points(net, I, starts=x0)
        return jax.block_until_ready(found)

    tic = time.perf_counter()
    found = call()
    cold = time.perf_counter() - tic
    times, cpu = [], []
    for _ in range(args.repeats):
        tic, cpu_tic = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - tic)
        cpu.append(time.process_time() - cpu_tic)
    best, median = min(times), statistics.median(times)
    dtype = "float32" if args.float32 else "float64"
    print(
        f"find_fixed_points: N = {args.units} units, {args.starts} starts, {dtype}, "
        f"{jax.device_count()} {jax.default_backend()} device(s)"
    )
    print(f"  cold call (compile + run): {cold:8.2f} s")
    print(f"  warm call, min / median of {args.repeats}: {best:.2f} s / {median:.2f} s")
    print(f"  CPU time of this process, min: {min(cpu):.2f} s")
    print(f"  per start (min wall): {1e3 * best / args.starts:.2f} ms")
    kinds = {k: found.kind.count(k) for k in dict.fromkeys(found.kind)}
    print(f"  found {len(found)} distinct points: {kinds}")
    stored = np.concatenate([xi, -xi])
    x = np.asarray(found.x)[found.attractors]
    overlap = np.round((x @ stored.T).max(axis=0) / args.units, 2).tolist()
    print(f"  largest overlap of an attractor with each stored +-pattern: {overlap}")
    if args.plot:
        import matplotlib.pyplot as plt

        from neurodyn import plot

        fig, ax = plt.subplots(figsize=(7, 5.5))
        plot.fixed_points(
            ax,
            found,
            states=visited,
            trajectories=visited,
            title=f"{args.units}-unit Hopfield-type network, {args.starts} starts",
        )
        plot.save(fig, args.plot)
        print(f"  figure: {args.plot}")


if __name__ == "__main__":
    main()
