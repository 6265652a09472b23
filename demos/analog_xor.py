"""Demo `analog-xor`: XOR learned by the analog learning system, activity, error
signals and weights integrated together as one ODE."""

import pathlib

import jax
import matplotlib.pyplot as plt
import numpy as np

import neurodyn as nd
from neurodyn import plot
from neurodyn._demos.xor import (
    OUTPUT,
    PATTERN_LABELS,
    correct,
    xor_network,
    xor_patterns,
)
from neurodyn._runs import model_arrays, model_config, write_json


# %% [markdown]
# ## One ODE for activity, error signals and weights
#
# The network and patterns of the `xor` demo. Instead of alternating relaxations
# and weight updates, `nd.analog_learning` integrates the whole analog learning
# system: the activities of every pattern, $\tau\dot x_a = -x_a + F(x_a)$ (eq 1),
# their error signals, $\tau\dot z_a = -z_a + A^T z_a + J_a$ with
# $A = \partial F/\partial x$ (eqs 15-17), and the weights,
# $\dot W = \eta \sum_a (\partial F/\partial W)^T z_a$, on the slower time scale
# set by $\eta$ (see the Theory page, "Analog learning on two time scales"). The
# method (the full ODE or the slow manifold) is picked from $\eta\tau$.


# %%
def run(out: pathlib.Path, *, small: bool = False) -> dict:
    I, T = xor_patterns()
    net = xor_network()
    eta, t1 = 0.5, 1000.0 if small else 2000.0
    run_ = nd.analog_learning(net, I, T, eta=eta, t1=t1)
    final = jax.tree.map(lambda leaf: leaf[-1], run_.model)
    outputs = np.asarray(nd.relax(final, I, throw=True).x[:, OUTPUT])
    ts = np.asarray(run_.ts)

    # %% [markdown]
    # ## The figure
    #
    # The error at the fixed points and that of the instantaneous state $x(t)$;
    # the output unit of each pattern moving to its target; the error signals
    # decaying as the error vanishes; and a few weights on their slow trajectory.

    # %%
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    plot.learning_curves(
        axes[0, 0],
        {
            "$E_{total}$ at the fixed points": (ts, run_.loss),
            "instantaneous $E$ of $x(t)$": (ts, run_.instantaneous_loss),
        },
        xlabel="time $t$",
        title=f"analog learning of XOR, $\\eta$ = {eta}",
    )
    for a, label in enumerate(PATTERN_LABELS):
        axes[0, 1].plot(ts, run_.x[:, a, OUTPUT], label=f"pattern {label}")
        axes[1, 0].plot(ts, run_.z[:, a, OUTPUT], label=f"pattern {label}")
    axes[0, 1].set(
        xlabel="time $t$",
        ylabel="output activity $x_6(t)$",
        title="outputs move to their targets (0.1 / 0.9)",
    )
    axes[1, 0].set(
        xlabel="time $t$",
        ylabel="error signal $z_6(t)$",
        title="backward error signals decay as the error vanishes",
    )
    W = np.asarray(run_.model.weights)
    for i, j in [(OUTPUT, 0), (OUTPUT, 1), (OUTPUT, 2), (3, 0), (4, 1), (5, 2)]:
        axes[1, 1].plot(ts, W[:, i, j], label=f"$w_{{{i}{j}}}$")
    axes[1, 1].set(
        xlabel="time $t$",
        ylabel="weight",
        title="slow weight dynamics $dW/dt = \\eta\\, y x^T$",
    )
    for ax in (axes[0, 1], axes[1, 0], axes[1, 1]):
        ax.legend(fontsize="small", ncol=2)
    plot.save(fig, out / "analog_learning.png")

    np.savez(out / "params.npz", **model_arrays(final))
    np.savez(out / "data.npz", I=I, T=T)
    np.savez(out / "history.npz", ts=ts, E_total=np.asarray(run_.loss))
    write_json(
        out / "config.json",
        {
            "demo": "analog-xor",
            "model": model_config(final),
            "eta": eta,
            "t1": t1,
            "output_unit": OUTPUT,
        },
    )
    metrics = {
        "output_unit": OUTPUT,
        "final_E_total": float(run_.loss[-1]),
        "correct": correct(outputs, T[:, OUTPUT]),
        "outputs": outputs,
        "initial_E_total": float(run_.loss[0]),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
