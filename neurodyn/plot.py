"""Matplotlib figures for neurodyn runs.

Every function draws on a given `matplotlib.axes.Axes` and returns it, so figures
compose; the demos save them as PNG files in their run folders.
"""

import matplotlib


matplotlib.use("Agg")  # figures are files; no screen is needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402


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
    colors = plt.cm.viridis(np.linspace(0, 0.9, states.shape[1]))
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
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
