r"""Benchmark: neurodyn's fixed points and gradients against every peer, in one run.

The problem (issue 11). A first-order network $x^* = F(x^*) = g(W x^*) + I$ with
logistic $g$, $N$ units, $P$ patterns $I \sim U(-1, 1)$, targets
$T \sim U(0.1, 0.9)$, every unit an output unit, and the loss

$$E = \tfrac12 \sum_{a=1}^{P} \sum_{i=1}^{N} (T_i^a - x_i^{*a})^2 .$$

Every entry is one jitted function `(W, I, T) -> (E, dE/dW)` over the whole batch
(single-pattern peers are `vmap`-ed over the patterns), started from $x = 0.5$.

Two regimes:

- `contracting`: $W = 0.5\,\mathrm{randn}(N, N)/\sqrt N$. The map $F$ is a
  contraction ($\|GW\| \approx 0.25$ with $G = \mathrm{diag}(g'(Wx))$), so plain
  iteration $x \leftarrow F(x)$ converges in a few steps.
- `skew`: $W = 3 (A - A^T)/\sqrt N$, $A \sim \mathrm{randn}$. $G^{1/2} W G^{1/2}$ is
  skew-symmetric, so the eigenvalues of $GW$ are imaginary: those of the ODE's
  Jacobian $-1 + GW$ have real part $-1$ (the fixed point is stable and the ODE
  converges), while $|\mathrm{eig}(GW)| > 1$ for many of them, so plain iteration
  oscillates instead of converging. The script checks this numerically (the
  "regime check" table: eigenvalues of $GW$ at the reference fixed point of pattern
  0, by `numpy.linalg.eigvals`, and the residual of 500 plain iterations).

Entries:

- peers: backprop through diffrax (Tsit5, PID controller, steady-state event,
  `RecursiveCheckpointAdjoint`); the same forward solve with diffrax's
  `ImplicitAdjoint` (its default linear solver, a dense LU of the Jacobian per
  pattern); optimistix `fixed_point` with `FixedPointIteration` and its
  `ImplicitAdjoint` with `lineax.LU()` (dense) or `lineax.GMRES` (matrix-free);
  jaxopt `FixedPointIteration` and `AndersonAcceleration` (defaults: history 5,
  ridge 1e-5) with implicit differentiation by GMRES; and the plain-loop floor, a
  hand-written `lax.while_loop` of $X \leftarrow g(X W^T) + I$ over the whole batch
  to the tolerance, then the adjoint iteration $Z \leftarrow (g'(u) \odot Z) W + J$,
  $J = X - T$, and $\partial E/\partial W = (g'(u) \odot Z)^T X$: one matrix
  product per iteration, the least work any method can do here.
- neurodyn: `nd.value_and_grad(net, I, T)` with its default solver and method, and
  `nd.value_and_grad(net, I, T, relaxation=nd.Relaxation(S), method=M)` per
  steady-state solver S with `M = nd.RecurrentBackprop()` (the adjoint by the same
  solver) and, for some, `nd.ImplicitDiff(lineax.GMRES(...))` (`neurodyn_entries()`
  in `_peers_entries.py`, to extend).

**Matched tolerances.** The common criterion is the root-mean-square fixed-point
residual of every pattern, $\mathrm{RMS}(F(x) - x) \le \mathrm{tol}$, with
tol $= 10^{-5}$ in float32 and $10^{-10}$ in float64 (absolute; $x^*$ is of order
one, $\mathrm{RMS}(x^*) \approx 0.6$-$1$, so this is also a relative tolerance of
about tol). The adjoint solves use the same absolute RMS tolerance on the residual of
$(1 - \partial F/\partial x)^T z = J$ (the source $J = x^* - T$ has RMS about 0.3).
How each entry maps onto it:

- diffrax peers and neurodyn's ODE: for $\tau = 1$ the vector field is
  $F(x) - x$, so the steady-state event `RMS(F(x) - x) < tol` is the criterion
  itself; the PID controller runs a decade tighter (rtol, atol $= 0.1\,$tol), as
  neurodyn's `ODERelaxation` does.
- optimistix `FixedPointIteration(rtol=0, atol=tol, norm=optimistix.rms_norm)`
  stops when $\mathrm{RMS}(x_n - F(x_n))/\mathrm{tol} < 1$; its GMRES adjoint is
  `lineax.GMRES(rtol=0, atol=tol, norm=optimistix.rms_norm)`.
- jaxopt measures the Euclidean norm of $F(x) - x$, so its `tol` is
  $\mathrm{tol}\sqrt N$; its implicit-diff solve is `jax.scipy`'s GMRES with
  `tol=0, atol=tol`$\sqrt N$, `solve_method="incremental"` (jaxopt's default, CG
  on the normal equations with a relative tolerance of $10^{-5}$, cannot reach the
  float64 tolerance).
- the floor stops both loops at $\max_a \mathrm{RMS}(\cdot) \le$ tol.
- neurodyn: `atol=tol` and `rtol=1e-3 tol` (its tests are
  $\mathrm{RMS} < \mathrm{atol} + \mathrm{rtol}\cdot\mathrm{size}$; the tiny rtol
  makes them absolute).

optimistix and jaxopt test the residual of the previous iterate and return one
more iterate $F(x_n)$, which is at least as accurate when $F$ contracts; neurodyn
and the floor return the iterate they tested (the floor's adjoint, one more).

**What is reported** per (regime, dtype, N, entry): the median wall time of
`--repeats` calls after a warm-up call, each blocked with `jax.block_until_ready`;
the compile time (`jax.jit(fn).lower(...).compile()`, tracing included, no
persistent cache); XLA's memory estimate, `compiled.memory_analysis()` temp +
output bytes; iterations (mean forward steps per pattern, where the entry exposes
them; the floor's as forward + adjoint; neurodyn's `value_and_grad` does not, so at
`--forward-sizes`, default 1024, its forward relaxation `nd.relax` is compiled and
timed too, giving its steps and the gradient/forward time ratio; so is the floor's
forward loop alone, whose ratio is the least an adjoint method reaches here);
whether it converged; the gradient's relative error
$\max|G - G_\mathrm{ref}| / \max|G_\mathrm{ref}|$ against a float64 reference
(below); and the ratios of its time to neurodyn's default and to the floor.

An entry is **FAILED** (and timed only by its warm-up call) when it raises, returns
a non-finite value, reports that it did not converge (its own flag, or for jaxopt
its final error above its tol), or its gradient's relative error exceeds
$10^3\,$tol.

**Reference.** In float64: damped iteration $x \leftarrow x + a(F(x) - x)$ with
$a = 1/(1 + \rho^2)$, $\rho = \|W\|_2/4$ (power iteration; $g' \le 1/4$, so $a$
damps every mode of an imaginary spectrum) until $\mathrm{RMS}(F(x) - x) \le
10^{-13}$, then a dense solve $(1 - GW)^T z = J$ per pattern (`jnp.linalg.solve`)
and $\partial E/\partial W = (g' \odot z)^T x$. The same (float64) problem is cast
to float32 for the float32 runs.

**Skip rules** (printed as "skipped (reason)"): (1) an entry that failed at a
smaller N in the same regime and dtype is not run at larger N; (2) an entry whose
time per call, predicted from the previous N by $N^2$ (matrix-free) or $N^3$
(dense per-pattern LU), or by the growth measured between the two previous sizes
if that is steeper, exceeds `--cap-seconds` (default 8 s) is not run, e.g.
backprop through diffrax at N = 2048. A memory check compiles neurodyn's default
and the floor at two tolerances (1e-3 and 1e-6, float32, contracting, N = 1024) and
compares their XLA memory.

float32 runs with `jax_enable_x64` off, as users run it, and float64 with it on,
in the same process: with x64 on, float32 inputs meet float64 scalars inside
optimistix's `FixedPointIteration`, jaxopt's `AndersonAcceleration` and neurodyn's
fallback, and they raise.

Run `make bench-peers`, or `.venv/bin/python benchmarks/peers.py --help`. The
default run (4 sizes, 2 dtypes, 2 regimes) took 14 minutes on 2 quiet CPU cores
(30 minutes when shared with other jobs), mostly compiling: 1-5 s per entry and
size. `OPENBLAS_NUM_THREADS` defaults to 1 (see `gradients.py`). Needs the `bench`
extra (jaxopt); without it the jaxopt entries are reported as unavailable. The
problem and its reference are in `_peers_problem.py`, the entries in
`_peers_entries.py`, the tables and the plot in `_peers_report.py`; this script
runs and times them.
"""

import argparse
import math
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass


os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _machine import load_average  # noqa: E402
from _peers_entries import PEERS, neurodyn_entries  # noqa: E402
from _peers_problem import REGIMES, make_problem, reference, regime_check  # noqa: E402
from _peers_report import (  # noqa: E402
    DEFAULT,
    FLOOR,
    TOLERANCES,
    WRONG_FACTOR,
    plot,
    report,
)


def compile_forward(entry, tol, W, I) -> tuple[Callable[[], object], float]:
    """An entry's forward relaxation alone, compiled: a blocking call, and its mean
    steps per pattern."""
    compiled = jax.jit(entry.forward(tol)).lower(W, I).compile()
    _, steps = jax.block_until_ready(compiled(W, I))
    return lambda: jax.block_until_ready(compiled(W, I)), float(jnp.mean(steps))


# ----------------------------------------------------------------------------------
# Running and timing


@dataclass
class Result:
    regime: str
    dtype: str
    n: int
    entry: str
    status: str  # "ok", "FAILED" or "skipped"
    note: str = ""
    median: float = float("nan")  # seconds
    best: float = float("nan")
    compile: float = float("nan")
    memory: float = float("nan")  # bytes, temp + output
    forward_iterations: float = float("nan")
    adjoint_iterations: float = float("nan")
    rel_err: float = float("nan")
    loss: float = float("nan")
    repeats: int = 0
    forward: float = float("nan")  # neurodyn: median of nd.relax alone, seconds


def compile_entry(fn, W, I, T):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(W, I, T).compile()
    seconds = time.perf_counter() - start
    stats = compiled.memory_analysis()
    memory = float("nan")
    if stats is not None:
        memory = float(stats.temp_size_in_bytes + stats.output_size_in_bytes)
    return compiled, seconds, memory


def failure_message(error: Exception) -> str:
    """The first sentence of an exception, or of the Equinox runtime error (e.g.
    neurodyn's "did not converge") that a jitted call carries inside its text."""
    text = str(error)
    marker = "EquinoxRuntimeError: "
    if marker in text:
        text = text[text.index(marker) + len(marker) :]
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = first.split(": ")[0].split(". ")[0]
    return f"raised {type(error).__name__}: {first[:80]}"


def rel_error(G, ref) -> float:
    G = np.asarray(G, dtype=np.float64)
    return float(np.max(np.abs(G - ref)) / np.max(np.abs(ref)))


def run_entry(entry, problem, ref, dtype, repeats, forwards, log) -> Result:
    """Compile, run, check and time one entry. With a dict `forwards` (None: not at
    this size), a neurodyn entry's forward relaxation is also compiled (once per
    forward_key, kept in `forwards`), its steps counted, and its calls timed
    alternately with the gradient's, so that both see the same machine load."""
    forward = forwards is not None

    def forward_of():
        if entry.forward_key not in forwards:
            forwards[entry.forward_key] = compile_forward(entry, tol, W, I)
        return forwards[entry.forward_key]

    tol = TOLERANCES[dtype]
    result = Result(problem.regime, dtype, problem.n, entry.name, "ok")
    W, I, T = problem.arrays(dtype)
    try:
        fn = entry.build(tol)
        compiled, result.compile, result.memory = compile_entry(fn, W, I, T)
        start = time.perf_counter()
        E, G, ok, iterations = jax.block_until_ready(compiled(W, I, T))
        first = time.perf_counter() - start
    except Exception as error:  # a peer that crashes is a failure, not the end
        result.status, result.note = "FAILED", failure_message(error)
        log(f"  {entry.name} raised {type(error).__name__}: {result.note}")
        if entry.neurodyn and forward and np.isfinite(result.compile):
            _, result.forward_iterations = forward_of()
        return result
    result.loss = float(E)
    result.forward_iterations, result.adjoint_iterations = map(float, iterations)
    if G.dtype != jnp.dtype(dtype):
        log(f"  {entry.name}: gradient came back as {G.dtype}, not {dtype}")
    finite = bool(jnp.isfinite(E)) and bool(jnp.all(jnp.isfinite(G)))
    result.rel_err = rel_error(G, ref.grad) if finite else float("nan")
    reasons = []
    if not finite:
        reasons.append("non-finite")
    if not bool(ok):
        reasons.append("not converged")
    if finite and result.rel_err > WRONG_FACTOR * tol:
        reasons.append("wrong gradient")
    if reasons:
        result.status, result.note = "FAILED", ", ".join(reasons)
        result.median = result.best = first
        result.repeats = 1
        return result

    def gradient():
        return jax.block_until_ready(compiled(W, I, T))

    if entry.forward and forward:
        relax, forward_iterations = forward_of()
        if entry.neurodyn:
            result.forward_iterations = forward_iterations
        runs, forward_runs = [], []
        for _ in range(repeats):
            runs += timeit.repeat(gradient, number=1, repeat=1)
            forward_runs += timeit.repeat(relax, number=1, repeat=1)
        result.forward = statistics.median(forward_runs)
    else:
        runs = timeit.repeat(gradient, number=1, repeat=repeats)
    result.median, result.best, result.repeats = (
        statistics.median(runs),
        min(runs),
        repeats,
    )
    return result


def skip_reason(entry, n, dtype, regime, results, cap_seconds) -> str | None:
    if entry.unavailable:
        return entry.unavailable
    earlier = [
        r
        for r in results
        if r.entry == entry.name and r.dtype == dtype and r.regime == regime and r.n < n
    ]
    failed = [r for r in earlier if r.status == "FAILED"]
    if failed:
        return f"failed at N={failed[0].n}"
    skipped = [r for r in earlier if r.status == "skipped"]
    if skipped:
        return skipped[-1].note
    timed = sorted((r for r in earlier if r.status == "ok"), key=lambda r: r.n)
    if timed:
        # Nominal growth N^2 (matrix-free) or N^3 (dense LU per pattern), or the
        # growth measured between the last two sizes if steeper.
        power = 3 if entry.dense else 2
        if len(timed) >= 2 and timed[-1].n > timed[-2].n:
            a, b = timed[-2], timed[-1]
            power = max(power, math.log(b.median / a.median) / math.log(b.n / a.n))
        last = timed[-1]
        predicted = last.median * (n / last.n) ** power
        if predicted > cap_seconds:
            return f"predicted {predicted:.1f} s per call > {cap_seconds:g} s cap"
    return None


# ----------------------------------------------------------------------------------
# Memory against iteration count


@dataclass(frozen=True)
class MemoryCheck:
    entry: str
    n: int
    tol: float
    memory: float
    iterations: float


def memory_check(entries, problem, log) -> list[MemoryCheck]:
    checks = []
    W, I, T = problem.arrays("float32")
    for entry in entries:
        for tol in (1e-3, 1e-6):
            log(f"memory check: {entry.name}, tol {tol:g}")
            fn = entry.build(tol)
            compiled, _, memory = compile_entry(fn, W, I, T)
            _, _, _, iterations = compiled(W, I, T)
            steps = float(iterations[0])
            if entry.neurodyn:
                _, steps = compile_forward(entry, tol, W, I)
            checks.append(MemoryCheck(entry.name, problem.n, tol, memory, steps))
    return checks


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time neurodyn's fixed-point gradients against diffrax, "
        "optimistix, jaxopt and a plain-loop floor, at matched tolerances."
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 2048])
    parser.add_argument("--patterns", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (median)")
    parser.add_argument(
        "--dtypes", nargs="+", choices=list(TOLERANCES), default=list(TOLERANCES)
    )
    parser.add_argument("--regimes", nargs="+", choices=REGIMES, default=list(REGIMES))
    parser.add_argument(
        "--entries",
        nargs="+",
        help="run only entries whose name contains one of these strings",
    )
    parser.add_argument(
        "--cap-seconds",
        type=float,
        default=8.0,
        help="skip an entry whose predicted time per call exceeds this",
    )
    parser.add_argument(
        "--forward-sizes",
        type=int,
        nargs="*",
        default=[1024],
        help="sizes at which neurodyn's forward relaxation (nd.relax) is also "
        "compiled and timed, for its steps and the gradient/forward ratio",
    )
    parser.add_argument(
        "--extra",
        action="store_true",
        help="also run the extra neurodyn entries (default + ImplicitDiff(GMRES), "
        "NewtonKrylov + RB)",
    )
    parser.add_argument("--no-memory-check", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the Markdown report here")
    parser.add_argument("--plot", help="write the cost-vs-N plot (PNG) here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.sizes = sorted(set(args.sizes))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    jax.config.update("jax_enable_compilation_cache", False)

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    args.load_start = load_average()
    entries = neurodyn_entries() + PEERS
    if args.entries:
        entries = [e for e in entries if any(s in e.name for s in args.entries)]
    elif not args.extra:
        entries = [e for e in entries if not e.extra]
    start = time.perf_counter()
    results, regime_checks = [], []
    for regime in args.regimes:
        for n in args.sizes:
            problem = make_problem(regime, n, args.patterns, args.seed)
            log(f"{regime} N={n}: float64 reference")
            jax.config.update("jax_enable_x64", True)
            ref = reference(problem)
            regime_checks.append(regime_check(problem, ref))
            for dtype in args.dtypes:
                # float32 runs as users run it, without x64: optimistix, jaxopt
                # and neurodyn's fallback mix in float64 scalars when it is on.
                jax.config.update("jax_enable_x64", dtype == "float64")
                forward_cache = {}
                for entry in entries:
                    reason = skip_reason(
                        entry, n, dtype, regime, results, args.cap_seconds
                    )
                    if reason:
                        log(f"{regime} {dtype} N={n}: {entry.name}: skipped ({reason})")
                        results.append(
                            Result(regime, dtype, n, entry.name, "skipped", reason)
                        )
                        continue
                    log(f"{regime} {dtype} N={n}: {entry.name}")
                    forwards = forward_cache if n in args.forward_sizes else None
                    r = run_entry(
                        entry, problem, ref, dtype, args.repeats, forwards, log
                    )
                    log(
                        f"  {r.status} {r.note} {1e3 * r.median:.1f} ms, compile "
                        f"{r.compile:.1f} s, err {r.rel_err:.1e}"
                    )
                    results.append(r)
    memory_checks = []
    if not args.no_memory_check and "contracting" in args.regimes:
        n = max([s for s in args.sizes if s <= 1024] or [min(args.sizes)])
        problem = make_problem("contracting", n, args.patterns, args.seed)
        chosen = [e for e in entries if e.name in (DEFAULT, FLOOR)]
        jax.config.update("jax_enable_x64", False)
        memory_checks = memory_check(chosen, problem, log)
    text = report(
        args, results, regime_checks, memory_checks, time.perf_counter() - start
    )
    print(text)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text)
    if args.plot:
        plot(results, args, args.plot)
        log(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
