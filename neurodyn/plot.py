"""Matplotlib figures for neurodyn runs (the `plot` extra: `pip install
"neurodyn[plot]"`).

Every function draws on a given `matplotlib.axes.Axes` and returns it, so figures
compose; the demos save them as PNG files in their run folders. Importing this module
chooses no matplotlib backend: `save` writes a figure made with
the object-oriented API (`matplotlib.figure.Figure`) without any, and a figure made
with `pyplot` uses whatever backend its program chose.
"""

import numpy as np


try:
    import matplotlib
    from matplotlib.axes import Axes
except ModuleNotFoundError as e:
    raise ModuleNotFoundError(
        "`neurodyn.plot` draws with matplotlib, which is not installed; install "
        'the plot extra: pip install "neurodyn[plot]".',
        name=e.name,
    ) from e


def state_trajectories(
    ax: Axes,
    ts,
    states,
    *,
    fixed_point=None,
    labels=None,
    title: str = "",
    ylabel: str = "activity $x_i(t)$",
) -> Axes:
    """Each unit's state over time (`states` is `(K, N)`), with its fixed point
    dashed if given."""
    ts, states = np.asarray(ts), np.asarray(states)
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, states.shape[1]))
    for i in range(states.shape[1]):
        label = None if labels is None else labels[i]
        ax.plot(ts, states[:, i], color=colors[i], label=label)
        if fixed_point is not None:
            ax.axhline(np.asarray(fixed_point)[i], color=colors[i], ls=":", lw=0.8)
    ax.set_xlabel("time $t$ (units of $\\tau$)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if labels is not None:
        ax.legend(fontsize="small", ncol=2, loc="lower right")
    return ax


def save(fig, path) -> None:
    """Write `fig` to `path` (120 dpi, tight layout) and, if `pyplot` made it,
    release it from `pyplot`'s figure list."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    if fig.canvas.manager is not None:  # only pyplot's figures have a manager
        import matplotlib.pyplot as plt

        plt.close(fig)


def learning_curves(
    ax: Axes,
    curves: dict,
    *,
    xlabel: str = "updates",
    ylabel: str = "$E_{\\mathrm{total}}$",
    title: str = "",
) -> Axes:
    """Attractor learning curves on a log scale: `curves` maps a label to
    `(steps, E)` (or to `E`, plotted against its index)."""
    for label, curve in curves.items():
        steps, E = curve if isinstance(curve, tuple) else (np.arange(len(curve)), curve)
        ax.semilogy(np.asarray(steps), np.maximum(np.asarray(E), 1e-16), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return ax


def outputs_vs_targets(
    ax: Axes, outputs: dict, targets, *, pattern_labels=None, title: str = ""
) -> Axes:
    """Grouped bars of each pattern's output (one group per pattern) against the
    target, drawn as a black tick; `outputs` maps a label to `(P,)` outputs."""
    targets = np.asarray(targets)
    positions = np.arange(targets.shape[0])
    width = 0.8 / max(len(outputs), 1)
    for k, (label, values) in enumerate(outputs.items()):
        ax.bar(
            positions + (k - (len(outputs) - 1) / 2) * width, values, width, label=label
        )
    ax.scatter(
        positions, targets, marker="_", s=600, color="black", label="target", zorder=3
    )
    ax.axhline(0.5, color="grey", ls=":", lw=0.8)
    ax.set_xticks(
        positions, pattern_labels if pattern_labels is not None else positions
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("output $x^*$")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def master_slave_curves(
    ax: Axes,
    curves: dict,
    *,
    threshold: float | None = None,
    xlabel: str = "updates",
    title: str = "",
) -> Axes:
    r"""$E_{\mathrm{total}}$ of a content-addressable memory's master and slave on a
    log scale: `curves` maps a method label to `(E_master, E_slave)` (each `(S+1,)`,
    against the number of updates). One colour per method; the master solid, the
    slave dashed and drawn as steps, since it jumps when a start state crosses a
    basin boundary. Earlier methods are drawn wider and paler, so curves that
    coincide stay visible. `threshold` adds a dotted horizontal line."""
    colors = matplotlib.colormaps["tab10"](np.arange(len(curves)))
    last = max(len(curves) - 1, 1)
    for k, (color, (label, (master, slave))) in enumerate(zip(colors, curves.items())):
        master, slave = np.asarray(master), np.asarray(slave)
        style = dict(color=color, lw=1.4 + 3.0 * (last - k) / last)
        style["alpha"] = 0.45 if k < len(curves) - 1 else 1.0
        ax.semilogy(np.maximum(master, 1e-16), label=f"master, {label}", **style)
        ax.semilogy(
            np.maximum(slave, 1e-16),
            ls="--",
            drawstyle="steps-post",
            label=f"slave, {label}",
            **style,
        )
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls=":", lw=1)
        ax.annotate(
            f"$E$ = {threshold:g}",
            (1, threshold),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            color="grey",
            fontsize="small",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("$E_{\\mathrm{total}}$")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def outcome_rates(
    ax: Axes,
    xs,
    rates: dict,
    *,
    xlabel: str,
    ylabel: str = "fraction of cues",
    title: str = "",
) -> Axes:
    """Fractions (in [0, 1]) against a swept quantity, one marked line per outcome;
    `rates` maps an outcome label to a `(len(xs),)` array."""
    for label, values in rates.items():
        ax.plot(np.asarray(xs), np.asarray(values), marker="o", ms=4, label=label)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def spectra_complex_plane(
    ax: Axes,
    forward,
    adjoint=None,
    *,
    tau: float = 1.0,
    title: str = "",
) -> Axes:
    r"""Eigenvalues of the forward linearisation (filled dots) and, overlaid, of the
    adjoint one (open rings) in the complex plane, with the stability line
    $\mathrm{Re}\,\lambda = 0$ and the reference $-1/\tau$ (where every eigenvalue
    of a network without recurrence sits). Arrays of any shape are flattened."""
    forward = np.ravel(np.asarray(forward))
    ax.axvline(0, color="crimson", lw=1.2, label="stability line Re $\\lambda$ = 0")
    ax.axvline(-1 / tau, color="grey", ls=":", lw=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.scatter(forward.real, forward.imag, s=22, color="tab:blue", label="forward")
    if adjoint is not None:
        adjoint = np.ravel(np.asarray(adjoint))
        ax.scatter(
            adjoint.real,
            adjoint.imag,
            s=80,
            facecolors="none",
            edgecolors="tab:orange",
            lw=1.3,
            label="adjoint",
        )
    ax.set_xlabel("Re $\\lambda$")
    ax.set_ylabel("Im $\\lambda$")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return ax


def leading_eigenvalue_along(
    ax: Axes,
    curves: dict,
    *,
    losses: dict | None = None,
    xlabel: str = "updates",
    title: str = "",
) -> Axes:
    r"""$\max \mathrm{Re}\,\lambda_1$ over patterns against updates (or time):
    `curves` maps a label to `(steps, leading)` with `leading` real `(K,)` or complex
    `(K, P)`. `losses` maps a label to the step where stability was lost (or None),
    marked with a cross on its curve. The stability line is drawn at 0."""
    ax.axhline(0, color="crimson", lw=1.2, label="stability line")
    losses = losses or {}
    for label, (steps, leading) in curves.items():
        leading = np.asarray(leading)
        values = leading.real.max(axis=-1) if leading.ndim == 2 else leading.real
        (line,) = ax.plot(np.asarray(steps), values, marker=".", ms=4, label=label)
        lost = losses.get(label)
        if lost is not None:
            at = int(np.argmin(np.abs(np.asarray(steps) - lost)))
            ax.plot(steps[at], values[at], "x", ms=11, mew=2.5, color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("max Re $\\lambda_1$ (over patterns)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def hessian_spectrum_along(
    ax: Axes,
    steps,
    eigenvalues,
    *,
    xlabel: str = "updates",
    title: str = "",
) -> Axes:
    """Every Hessian eigenvalue (`eigenvalues` is `(K, M)`) against updates, the
    largest and smallest joined by lines. The axis turns symmetric-log when the
    magnitudes span more than three decades, so that small, zero and negative
    curvatures all show."""
    steps, eigenvalues = np.asarray(steps), np.asarray(eigenvalues)
    for j in range(eigenvalues.shape[1]):
        ax.plot(steps, eigenvalues[:, j], "o", ms=3.5, color="tab:blue", alpha=0.6)
    ax.plot(steps, eigenvalues.max(axis=1), color="tab:green", label="largest")
    ax.plot(steps, eigenvalues.min(axis=1), color="tab:purple", label="smallest")
    magnitudes = np.abs(eigenvalues[np.abs(eigenvalues) > 0])
    if magnitudes.size and magnitudes.max() > 1e3 * magnitudes.min():
        ax.set_yscale("symlog", linthresh=1e-3 * float(magnitudes.max()))
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("eigenvalues of $\\partial^2 E/\\partial W^2$")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


# The landscape's kinds of points: colour, marker and whether the marker is filled.
_KIND_STYLES = {
    "stable node": ("tab:blue", "o", True),
    "stable focus": ("tab:cyan", "o", True),
    "saddle": ("tab:orange", "X", True),
    "unstable node": ("tab:red", "s", True),
    "unstable focus": ("tab:pink", "s", True),
    "non-hyperbolic": ("tab:purple", "D", True),
    "slow point": ("tab:grey", "o", False),
}


def principal_axes(states, k: int = 2):
    """The mean and the first `k` principal directions `(N, k)` of `states` (any
    shape `(..., N)`), by SVD of the centred states."""
    flat = np.asarray(states).reshape(-1, np.shape(states)[-1])
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    axes = vt[:k].T
    if axes.shape[1] < k:  # fewer distinct states than axes: pad with zeros
        axes = np.pad(axes, ((0, 0), (0, k - axes.shape[1])))
    return mean, axes


def fixed_points(
    ax: Axes,
    landscape,
    *,
    states=None,
    trajectories=None,
    manifolds=None,
    labels: dict | None = None,
    title: str = "",
) -> Axes:
    """A [`neurodyn.Landscape`][] in the plane of the first two principal components
    of the visited `states` (`(..., N)`; default the points themselves): each point
    marked by its kind, `trajectories` (`(B, K, N)`) as thin grey lines, the saddles'
    unstable manifolds (a [`neurodyn.UnstableManifolds`][]) as orange lines, and
    `labels` (point index to text) written next to their points."""
    x = np.asarray(landscape.x)
    mean, axes = principal_axes(x if states is None else states)
    project = lambda v: (np.asarray(v) - mean) @ axes  # noqa: E731
    for path in [] if trajectories is None else np.asarray(trajectories):
        ax.plot(*project(path).T, color="0.75", lw=0.6, zorder=1)
    if manifolds is not None:
        for k, branch in enumerate(np.asarray(manifolds.x)):
            label = "unstable manifolds of saddles" if k == 0 else None
            ax.plot(*project(branch).T, color="tab:orange", lw=1.2, label=label)
    xy = project(x).reshape(-1, 2)
    for kind, (color, marker, filled) in _KIND_STYLES.items():
        mine = np.array([k == kind for k in landscape.kind], dtype=bool)
        if not mine.any():
            continue
        ax.scatter(
            *xy[mine].T,
            s=70,
            marker=marker,
            facecolors=color if filled else "none",
            edgecolors=color if not filled else "black",
            linewidths=0.8,
            label=f"{kind} ({int(mine.sum())})",
            zorder=3,
        )
    for index, text in (labels or {}).items():
        ax.annotate(
            text, xy[index], xytext=(6, 6), textcoords="offset points", fontsize="small"
        )
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return ax


def landscape_along(
    ax: Axes, trace, *, xlabel: str = "updates", title: str = ""
) -> Axes:
    """The numbers of attractors, saddles and slow points at every snapshot of a
    [`neurodyn.LandscapeTrace`][], with its bifurcations (saddle-node, Hopf,
    branch point) marked as dotted vertical lines at the snapshot where they are
    first seen."""
    steps = np.asarray(trace.steps)
    counts = {
        "attractors": trace.count("stable node", "stable focus"),
        "saddles": trace.count("saddle"),
        "unstable": trace.count("unstable node", "unstable focus"),
        "slow points": trace.count("slow point"),
    }
    for label, values in counts.items():
        if label in ("attractors", "saddles") or values.any():
            ax.step(steps, values, where="post", marker=".", label=label)
    seen = set()
    for event in trace.events:
        if event.kind in ("birth", "death"):
            continue
        label = None if event.kind in seen else event.kind
        seen.add(event.kind)
        color = {"saddle-node": "crimson", "Hopf": "tab:green"}.get(event.kind, "k")
        ax.axvline(event.step, color=color, ls=":", lw=1.2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("number of points")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax
