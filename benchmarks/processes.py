r"""Benchmark: time per training update over 1, 2 and 4 local processes.

The same problem, a `nd.FirstOrderNetwork` with $N$ units learning $P$ patterns
($W = 0.5\,\mathrm{randn}(N,N)/\sqrt N$, $I \sim U(-1,1)$, $T \sim U(0.1,0.9)$,
float32, `optax.sgd`, the default solver and `nd.RecurrentBackprop()`), runs with
its patterns sharded by `nd.shard_patterns` over $K$ processes joined by
`jax.distributed` (started by `neurodyn.launch.spawn`, coordinator on 127.0.0.1),
one CPU device each, so each process relaxes $P/K$ patterns and the gradient's sum
over patterns is reduced across processes (gloo). For each $K$ the script reports the
median and minimum over `--repeats` of the wall time per update of
`nd.train(..., steps=S)` (compiled by a 1-step run first), and the CPU time all
processes spent per update.

Run with `make bench-processes` or `.venv/bin/python benchmarks/processes.py --help`.
"""

import argparse
import datetime
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time


# One BLAS thread per process unless the caller says otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def worker(args: argparse.Namespace) -> None:
    """One process of a K-process run: time the updates, process 0 saves them."""
    from neurodyn.launch import initialize

    initialize(args.coordinator, args.num_processes, args.process_id)
    import jax
    import numpy as np
    import optax
    from jax.experimental import multihost_utils

    import neurodyn as nd

    rng = np.random.default_rng(args.seed)
    n, p = args.units, args.patterns
    net = nd.FirstOrderNetwork(0.5 * rng.standard_normal((n, n)) / np.sqrt(n))
    I = rng.uniform(-1.0, 1.0, (p, n)).astype(np.float32)
    T = rng.uniform(0.1, 0.9, (p, n)).astype(np.float32)
    I, T = nd.shard_patterns(I, T)
    optimizer = optax.sgd(0.1)
    nd.train(net, I, T, optimizer=optimizer, steps=1)  # compiles
    walls, cpus = [], []
    for _ in range(args.repeats):
        multihost_utils.sync_global_devices("start")
        wall, cpu = time.perf_counter(), time.process_time()
        run = nd.train(net, I, T, optimizer=optimizer, steps=args.steps)
        run.model.weights.block_until_ready()
        multihost_utils.sync_global_devices("stop")
        walls.append((time.perf_counter() - wall) / args.steps)
        cpus.append((time.process_time() - cpu) / args.steps)
    # The CPU time of every process, gathered: (processes, repeats).
    cpus = multihost_utils.process_allgather(np.asarray(cpus))
    if jax.process_index() == 0:
        pathlib.Path(args.result).write_text(
            json.dumps(
                {
                    "devices": len(jax.devices()),
                    "wall": walls,
                    "cpu_total": np.sum(cpus, axis=0).tolist(),
                }
            )
        )


def measure(processes: int, args: argparse.Namespace, folder: pathlib.Path) -> dict:
    from neurodyn.launch import spawn

    result = folder / f"result-{processes}.json"
    options = [
        "--worker",
        f"--result={result}",
        f"--units={args.units}",
        f"--patterns={args.patterns}",
        f"--steps={args.steps}",
        f"--repeats={args.repeats}",
        f"--seed={args.seed}",
    ]
    code = spawn(options, processes, timeout=args.timeout, program=[__file__])
    if code != 0:
        sys.exit(f"The {processes}-process run failed (exit code {code}).")
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--patterns", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--out", help="also write the table to this file")
    # What `spawn` gives each worker process:
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--num-processes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from _machine import load_average, machine

    lines = [
        f"Training updates over K local processes, one CPU device each: N = "
        f"{args.units}, P = {args.patterns} (P/K per process), float32, "
        f"{args.steps} updates per timing, {args.repeats} timings.",
        f"{datetime.date.today()}; load average before: {load_average()}.",
        "",
        "| K | ms/update (median) | ms/update (min) | CPU ms/update, all processes "
        "| speed-up (median) |",
        "|---|---|---|---|---|",
    ]
    base = None
    with tempfile.TemporaryDirectory() as folder:
        for k in args.processes:
            r = measure(k, args, pathlib.Path(folder))
            wall = statistics.median(r["wall"])
            base = wall if base is None else base
            lines.append(
                f"| {k} | {1e3 * wall:.1f} | {1e3 * min(r['wall']):.1f} | "
                f"{1e3 * statistics.median(r['cpu_total']):.1f} | {base / wall:.2f} |"
            )
            print(lines[-1], flush=True)
    lines += ["", f"Load average after: {load_average()}.", machine(["jax", "jaxlib"])]
    table = "\n".join(lines)
    print(table)
    if args.out:
        pathlib.Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
