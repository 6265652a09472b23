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
