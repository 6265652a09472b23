r"""Benchmark: analog learning at scale, neurodyn against a hand-written script.

The problem (issue 16): a first-order logistic network of $N$ units, $P = 32$
patterns, $W_0 = 0.5\,\mathrm{randn}/\sqrt N$, a quarter of the units inputs, an
eighth outputs, $\epsilon = \eta\tau$ swept, $t_1 = 1/\eta$ so that $\eta t_1 = 1$
(the same amount of learning whatever $\epsilon$).

Entries, each timed after a compiling call (the median of `--repeats` calls, one
if a call takes over `--cap-seconds`):

- `hand-written`: the coupled system in a few lines of JAX (`x @ W.T`,
  `(g' z) @ W`, `(g' z).T @ x`, written here independently of neurodyn) with
  `diffrax.diffeqsolve(Tsit5, PIDController(rtol, atol))`: what a user writes.
- `neurodyn default`: `nd.analog_learning(...)` with no method (the default picks).
- `FullSystem(Tsit5)`, `SlowManifold(order=0)`, `SlowManifold(order=1)`,
  `SlowManifold(order=1, Heun, slow_rtol=1e-4)` (the slow ODE by Heun's method,
  two fields a step where Tsit5 takes six: its steps are capped by stability),
  `SlowManifold(order=1, implicit)` (the linearly implicit slow integrator, its
  step-size controller at `slow_rtol=1e-3`, and at `1e-4`).
- `dense Kvaerno5`: `FullSystem(diffrax.Kvaerno5())`, only while the dense
  Jacobian of the state fits (`--dense-max` numbers), to show the wall.

An explicit solver's step is capped at a few $\tau$, so the hand-written script's
work is proportional to $t_1$: when its estimated time exceeds `--cap-seconds` it
is run to $t_1/10$ and its time and steps are scaled by 10, marked `(x10)`.

Errors are of $W(t_1) - W(0)$, relative, against a reference: the hand-written
full system with Dopri8 at rtol $10^{-11}$ in float64 where affordable
(`--reference-max-steps`, about $0.8\,t_1/\tau$ steps), else the first-order slow
manifold at rtol $10^{-9}$ (marked), whose modelling error is $O(\epsilon^2)$.

Memory: XLA's compiled temporary allocation of the hand-written program
(`memory_analysis()`), and the process's peak resident memory after each entry
(`peak_rss_mb`, monotone: an entry that grew memory with $t_1$ would raise it).

Each row is also appended to `--json` (one JSON object a line), so that a grid can
be run in pieces; `--plot FIGURE` draws time against eps, one line per entry and
$N$, from such a file (without running anything).

Run with `make bench-analog-scale` or `.venv/bin/python benchmarks/analog_scale.py
--help`.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _machine import machine  # noqa: E402

import neurodyn as nd  # noqa: E402


def problem(n: int, dtype):
    rng = np.random.default_rng(0)
    W0 = (0.5 * rng.standard_normal((n, n)) / np.sqrt(n)).astype(dtype)
    inputs = np.arange(n) < n // 4
    outputs = np.arange(n) >= n - n // 8
    I = (rng.uniform(-1, 1, (32, n)) * inputs).astype(dtype)
    T = rng.uniform(0.2, 0.8, (32, n)).astype(dtype)
    net = nd.FirstOrderNetwork(W0, input_units=inputs, output_units=outputs)
    return net, W0, inputs, outputs, I, T


def hand_written(W0, inputs, outputs, I, T, eta, t1, rtol, atol, solver=None):
    """The coupled system as a user writes it, with diffrax Tsit5 (or `solver`)."""

    def field(t, state, args):
        x, z, W = state
        s = jax.nn.sigmoid(x @ W.T)
        y = s * (1 - s) * z
        dx = -x + s + jnp.where(inputs, I, 0)
        dz = -z + y @ W + jnp.where(outputs, T - x, 0)
        return dx, dz, eta * y.T @ x

    @jax.jit
    def solve(W0):
        y0 = (jnp.full(I.shape, 0.5, I.dtype), jnp.zeros_like(I), W0)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5() if solver is None else solver,
            0.0,
            t1,
            None,
            y0,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=10_000_000,
        )
        return sol.ys[2][-1], sol.stats["num_steps"]

    return solve, (jnp.asarray(W0),)


def timed(fn, args, repeats, cap):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
        if times[-1] > cap:
            break
    median = statistics.median(times)
    return out, median, max(first - median, 0.0)


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def temp_bytes(fn, args):
    try:
        analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
        return int(analysis.temp_size_in_bytes)
    except Exception:  # noqa: BLE001 -- not every backend reports it
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cap-seconds", type=float, default=20.0)
    parser.add_argument("--dense-max", type=int, default=2_000)
    parser.add_argument("--reference-max-steps", type=int, default=20_000)
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the errors (large N)"
    )
    parser.add_argument(
        "--entries",
        nargs="+",
        help="run only the neurodyn entries whose names contain one of these",
    )
    parser.add_argument("--json", help="append every row to this file")
    parser.add_argument("--plot", help="draw the rows of --json into this figure")
    args = parser.parse_args(argv)
    if args.plot:
        return plot(args.json, args.plot)
    jax.config.update("jax_enable_x64", True)
    print(machine(["jax", "diffrax", "equinox"]), flush=True)
    rows = []
    for dtype in args.dtypes:
        rtol, atol = (1e-6, 1e-8) if dtype == "float64" else (1e-5, 1e-6)
        for n in args.sizes:
            net, W0, inputs, outputs, I, T = problem(n, np.dtype(dtype))
            for eps in args.eps:
                rows += run_case(
                    args, dtype, n, eps, rtol, atol, net, W0, inputs, outputs, I, T
                )
    print()
    print(table(rows))


def run_case(args, dtype, n, eps, rtol, atol, net, W0, inputs, outputs, I, T):
    t1 = 1.0 / eps
    change_ref, ref_name = (
        (None, "none")
        if args.no_reference
        else reference(args, net, W0, inputs, outputs, I, T, eps, t1, n)
    )
    rows = []

    def relative(W):
        if change_ref is None:
            return float("nan")
        return float(
            np.linalg.norm(np.asarray(W, np.float64) - W0 - change_ref)
            / np.linalg.norm(change_ref)
        )

    # The hand-written script; scaled from t1 / 10 when it would take too long.
    steps_estimate = 0.4 * t1  # Tsit5 on a tau = 1 relaxation: about 2.5 tau a step
    scale = (
        10 if steps_estimate * n * n * 32 * 6 * 3 * 2 / 5e9 > args.cap_seconds else 1
    )
    solve, solve_args = hand_written(
        W0, inputs, outputs, I, T, eps, t1 / scale, rtol, atol
    )
    (W, steps), seconds, compile_s = timed(
        solve, solve_args, args.repeats, args.cap_seconds
    )
    hand = seconds * scale
    rows.append(
        dict(
            dtype=dtype,
            n=n,
            eps=eps,
            name="hand-written" + (" (x10)" if scale > 1 else ""),
            seconds=hand,
            compile=compile_s,
            steps=int(steps) * scale,
            error=relative(W) if scale == 1 else float("nan"),
            memory=temp_bytes(solve, solve_args),
            peak_rss_mb=peak_rss_mb(),
            ratio=1.0,
            ref=ref_name,
        )
    )
    entries = {
        "neurodyn default": None,
        "FullSystem(Tsit5)": nd.FullSystem(),
        "SlowManifold(order=0)": nd.SlowManifold(order=0),
        "SlowManifold(order=1)": nd.SlowManifold(order=1),
        "SlowManifold(order=1, Heun, slow_rtol=1e-4)": nd.SlowManifold(
            order=1, solver=diffrax.Heun(), slow_rtol=1e-4
        ),
        "SlowManifold(order=1, implicit)": nd.SlowManifold(
            order=1, implicit=True, slow_rtol=1e-3
        ),
        "SlowManifold(order=1, implicit, slow_rtol=1e-4)": nd.SlowManifold(
            order=1, implicit=True, slow_rtol=1e-4
        ),
    }
    if (2 * I.size + W0.size) <= args.dense_max:
        entries["dense Kvaerno5"] = nd.FullSystem(diffrax.Kvaerno5())
    if args.entries:
        entries = {
            name: method
            for name, method in entries.items()
            if any(part in name for part in args.entries)
        }
    for name, method in entries.items():
        if (
            isinstance(method, nd.FullSystem)
            and 0.4 * t1 * n * n * 32 * 36 / 5e9 > 3 * args.cap_seconds
        ):
            continue  # the same wall as the hand-written script: shown there

        def call():
            return nd.analog_learning(
                net,
                I,
                T,
                eta=eps,
                t1=t1,
                saveat=[t1],
                method=method,
                rtol=rtol,
                atol=atol,
            )

        run, seconds, compile_s = timed(call, (), args.repeats, args.cap_seconds)
        label = name if method is not None else f"{name} = {type(run.method).__name__}"
        rows.append(
            dict(
                dtype=dtype,
                n=n,
                eps=eps,
                name=label,
                seconds=seconds,
                compile=compile_s,
                steps=int(run.stats["num_steps"]),
                error=relative(run.model.weights[-1]),
                memory=None,
                ratio=hand / seconds,
                ref=ref_name,
                estimate=float(run.error_estimate),
                peak_rss_mb=peak_rss_mb(),
            )
        )
        print(rows[-1], flush=True)
    print(rows[0], flush=True)
    if args.json:
        with open(args.json, "a") as file:
            for row in rows:
                file.write(json.dumps(row) + "\n")
    return rows


def reference(args, net, W0, inputs, outputs, I, T, eps, t1, n):
    """W(t1) - W(0) in float64: the hand-written full system with Dopri8 at rtol
    1e-11 where affordable (independent of neurodyn), else neurodyn's first-order
    slow manifold at rtol 1e-9 (whose modelling error is O(eps^2))."""
    W64, I64, T64 = (a.astype(np.float64) for a in (W0, I, T))
    if 0.8 * t1 <= args.reference_max_steps:
        solve, solve_args = hand_written(
            W64, inputs, outputs, I64, T64, eps, t1, 1e-11, 1e-13, diffrax.Dopri8()
        )
        return np.asarray(solve(*solve_args)[0]) - W64, "full"
    net64 = jax.tree.map(
        lambda a: a.astype(np.float64) if eqx.is_inexact_array(a) else a, net
    )
    run = nd.analog_learning(
        net64, I64, T64, eta=eps, t1=t1, saveat=[t1], method=nd.SlowManifold(),
        rtol=1e-9, atol=1e-11, max_steps=10_000_000,
    )  # fmt: skip
    return np.asarray(run.model.weights[-1]) - W64, "slow-1"


def table(rows) -> str:
    lines = [
        "| dtype | N | eps | entry | time s | x faster than hand-written "
        "| compile s | steps | rel. error of W(t1)-W(0) | estimate | reference |",
        "|:--|--:|--:|:--|--:|--:|--:|--:|--:|--:|:--|",
    ]
    for r in rows:
        est = r.get("estimate")
        estimate = "" if est is None else f"{est:.1e}"
        lines.append(
            f"| {r['dtype']} | {r['n']} | {r['eps']:g} | {r['name']} "
            f"| {r['seconds']:.3g} | {r['ratio']:.3g} | {r['compile']:.3g} "
            f"| {r['steps']} | {r['error']:.2e} | {estimate} | {r['ref']} |"
        )
    return "\n".join(lines)


def plot(json_path: str, figure: str) -> None:
    """Time against eps, one panel per dtype, one line per entry and N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(json_path) as file:
        rows = [json.loads(line) for line in file if line.strip()]
    dtypes = sorted({r["dtype"] for r in rows}, reverse=True)
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6 * len(dtypes), 4.5))
    axes = np.atleast_1d(axes)
    styles = {
        "hand": "-",
        "Heun": "--",
        "implicit, slow_rtol": ":",
        "default": "--",
        "FullSystem": ":",
        "order=0": "-.",
        "implicit": "-",
        "order=1": "-",
    }
    colours = {64: "tab:blue", 256: "tab:orange", 1024: "tab:green"}
    markers = {
        "hand": "o",
        "Heun": "D",
        "implicit, slow_rtol": "P",
        "default": "s",
        "FullSystem": "x",
        "order=0": "v",
        "implicit": "*",
        "order=1": "^",
    }
    for ax, dtype in zip(axes, dtypes):
        lines = {}
        for r in rows:
            if r["dtype"] != dtype:
                continue
            kind = next(k for k in styles if k in r["name"])
            lines.setdefault((kind, r["n"]), []).append((r["eps"], r["seconds"]))
        for (kind, n), points in sorted(lines.items()):
            eps, seconds = zip(*sorted(points))
            ax.loglog(
                eps, seconds, styles[kind], marker=markers[kind],
                color=colours.get(n, "black"), label=f"{kind}, N={n}",
            )  # fmt: skip
        ax.set_xlabel("eps = eta tau (eta t1 = 1)")
        ax.set_ylabel("wall time after compilation, s")
        ax.set_title(f"{dtype}, P = 32")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)
    print(f"wrote {figure}")


if __name__ == "__main__":
    sys.exit(main())
