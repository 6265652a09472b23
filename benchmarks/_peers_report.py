"""The report of `benchmarks/peers.py`: its Markdown tables and its cost-vs-N plot,
and the entry names and tolerances that the runs and the report share."""

import datetime
import os
from typing import TYPE_CHECKING

import numpy as np
from _machine import load_average, machine


if TYPE_CHECKING:  # the records peers.py fills
    from _peers_problem import RegimeCheck
    from peers import MemoryCheck, Result


# The common stopping tolerance per dtype (RMS fixed-point residual).
TOLERANCES = {"float32": 1e-5, "float64": 1e-10}
# A gradient further than this times tol from the reference is wrong.
WRONG_FACTOR = 1e3
DEFAULT = "neurodyn default"
FLOOR = "plain-loop floor"


PACKAGES = ["jax", "diffrax", "equinox", "lineax", "optimistix", "jaxopt", "neurodyn"]


def fmt(value: float, digits: int = 1) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:,.{digits}f}"


def fmt_error(value: float) -> str:
    return f"{value:.1e}" if np.isfinite(value) else "—"


def fmt_iterations(r: "Result") -> str:
    if not np.isfinite(r.forward_iterations):
        return "—"
    text = f"{r.forward_iterations:.0f}"
    if np.isfinite(r.adjoint_iterations):
        text += f" + {r.adjoint_iterations:.0f}"
    return text


def ratio(r: "Result", base: "Result | None") -> str:
    if base is None or base.status != "ok" or r.status != "ok":
        return "—"
    return f"{r.median / base.median:.2f}"


def table(columns: str, rows: list[list[str]]) -> list[str]:
    """A Markdown table; `columns` is "name:align | name:align ...", align `l`
    (left) or `r` (right)."""
    names, aligns = zip(*(c.strip().rsplit(":", 1) for c in columns.split("|")))
    rule = {"l": ":--", "r": "--:"}
    return [
        "| " + " | ".join(names) + " |",
        "|" + "|".join(rule[a] for a in aligns) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def results_table(results: list["Result"], regime: str, dtype: str) -> list[str]:
    rows = []
    chosen = [r for r in results if r.regime == regime and r.dtype == dtype]
    for n in sorted({r.n for r in chosen}):
        at_n = [r for r in chosen if r.n == n]
        default = next((r for r in at_n if r.entry == DEFAULT), None)
        floor = next((r for r in at_n if r.entry == FLOOR), None)
        for r in at_n:
            status = r.status if not r.note else f"{r.status} ({r.note})"
            median = fmt(1e3 * r.median) if r.status != "skipped" else "—"
            best = fmt(1e3 * r.best) if r.status == "ok" else "—"
            rows.append(
                [str(n), r.entry, status, median, best, ratio(r, default)]
                + [ratio(r, floor), fmt(r.compile), fmt(r.memory / 2**20)]
                + [fmt_iterations(r), fmt_error(r.rel_err)]
            )
    return [
        f"### {regime}, {dtype} (tol {TOLERANCES[dtype]:g})",
        "",
        *table(
            "N:r | entry:l | status:l | ms (median):r | ms (min):r | × default:r "
            "| × floor:r | compile s:r | memory MB:r | iterations:r "
            "| grad rel err:r",
            rows,
        ),
    ]


def regime_table(checks: list["RegimeCheck"]) -> list[str]:
    rows = [
        [
            c.regime,
            str(c.n),
            f"{c.max_real_jacobian:.3f} / {c.min_real_jacobian:.3f}",
            f"{c.max_abs:.2f}",
            f"{c.frac_above_one:.2f}",
            f"{c.plain_residual:.1e}",
            f"{c.reference_residual:.1e} ({c.reference_iterations}, {c.damping:.2f})",
            f"{c.rms_x:.2f}",
        ]
        for c in checks
    ]
    return table(
        "regime:l | N:r | Re eig(-1+GW) max / min:r | max abs eig(GW):r "
        "| share abs eig(GW) > 1:r | plain iteration residual after 500:r "
        "| reference residual (iterations, damping):r | RMS(x*):r",
        rows,
    )


def forward_table(results: list["Result"]) -> list[str]:
    rows = [
        [r.regime, r.dtype, str(r.n), r.entry, fmt(1e3 * r.forward)]
        + [fmt(r.forward_iterations, 0), fmt(1e3 * r.median)]
        + [f"{r.median / r.forward:.2f}"]
        for r in results
        if np.isfinite(r.forward)
    ]
    return table(
        "regime:l | dtype:l | N:r | entry:l | forward ms:r | forward steps:r "
        "| gradient ms:r | gradient / forward:r",
        rows,
    )


def memory_table(checks: list["MemoryCheck"]) -> list[str]:
    rows = [
        [c.entry, str(c.n), f"{c.tol:g}", f"{c.iterations:.0f}"]
        + [f"{c.memory / 2**20:.2f}"]
        for c in checks
    ]
    return table("entry:l | N:r | tol:r | forward iterations:r | memory MB:r", rows)


def report(args, results, regime_checks, memory_checks, seconds) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"Peers benchmark, {now} UTC: {machine(PACKAGES)}.",
        f"P={args.patterns} patterns, seed {args.seed}, {args.repeats} timed calls "
        f"(median) after a warm-up; OPENBLAS_NUM_THREADS="
        f"{os.environ['OPENBLAS_NUM_THREADS']}; cap {args.cap_seconds:g} s per "
        f"call; whole run {seconds / 60:.1f} min; load average "
        f"{args.load_start} at the start, {load_average()} at the end.",
        "",
        "Tolerance: every entry stops at RMS(F(x) - x) <= tol per pattern "
        "(absolute RMS over units), adjoints at the same RMS tolerance; see the "
        "script's docstring for each peer's mapping.",
        "",
        "## Regime check (float64, pattern 0 at the reference fixed point)",
        "",
        *regime_table(regime_checks),
        "",
    ]
    for regime in args.regimes:
        for dtype in args.dtypes:
            lines += results_table(results, regime, dtype) + [""]
    lines += [
        "`× default`, `× floor`: median time over that of neurodyn's default and of "
        "the plain-loop floor at the same N. `memory MB`: XLA temp + output bytes. "
        "`iterations`: mean forward steps per pattern (floor: forward + adjoint). "
        "`grad rel err`: max|G - G_ref| / max|G_ref| against the float64 dense "
        f"reference; above {WRONG_FACTOR:g} tol counts as FAILED. FAILED entries "
        "are timed by their warm-up call only; skipped entries were not run.",
        "",
    ]
    if any(np.isfinite(r.forward) for r in results):
        lines += [
            "## Gradient against its own forward relaxation",
            "",
            "neurodyn's entries against `nd.relax` with the same solver; the floor "
            "against its forward loop alone (forward steps: the floor's forward "
            "iterations).",
            "",
            *forward_table(results),
            "",
        ]
    if memory_checks:
        lines += [
            "## Memory against iteration count (float32, contracting)",
            "",
            *memory_table(memory_checks),
            "",
        ]
    return "\n".join(lines)


def plot(results, args, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [(r, d) for r in args.regimes for d in args.dtypes]
    cols = len(args.dtypes)
    rows = len(args.regimes)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.5 * cols + 3.5, 4.2 * rows), squeeze=False, sharex=True
    )
    names = list(dict.fromkeys(r.entry for r in results))
    neurodyn_names = [name for name in names if name.startswith(("nd ", DEFAULT))]
    peer_names = [name for name in names if name not in neurodyn_names]
    styles = {}
    palette = [plt.get_cmap("tab10")(k) for k in (0, 1, 2, 4, 5, 6, 8, 9)]  # no red
    for k, name in enumerate(neurodyn_names):
        styles[name] = (palette[k % len(palette)], "-", 1.4)
    for k, name in enumerate(peer_names):
        styles[name] = (plt.get_cmap("Dark2")(k % 8), "--", 1.4)
    styles[DEFAULT] = ("red", "-", 3.0)
    styles[FLOOR] = ("black", ":", 3.0)
    for ax, (regime, dtype) in zip(axes.flat, panels):
        for name in names:
            pts = sorted(
                (r.n, 1e3 * r.median)
                for r in results
                if r.entry == name
                and r.regime == regime
                and r.dtype == dtype
                and r.status == "ok"
            )
            if not pts:
                continue
            color, style, width = styles[name]
            ax.plot(
                *zip(*pts), style, marker="o", ms=3, color=color, lw=width, label=name
            )
        ax.set_xscale("log")
        ax.set_xticks(args.sizes, [str(n) for n in args.sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_yscale("log")
        ax.set_title(f"{regime}, {dtype} (tol {TOLERANCES[dtype]:g})")
        ax.set_xlabel("N")
        ax.set_ylabel(f"ms per (E, dE/dW), P = {args.patterns}")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(
        "Fixed point + gradient, cost vs N (converged entries only; neurodyn "
        "solid, peers dashed)"
    )
    fig.tight_layout(rect=(0, 0, 1 - 3.4 / (5.5 * cols + 3.5), 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
