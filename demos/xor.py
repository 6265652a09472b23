"""Demo `xor`: a recurrent network with hidden units learns XOR by Pineda's rule,
deterministic (eq 19) and stochastic (eq 20) presentation."""

import pathlib

import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import optax

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import model_arrays, model_config, write_json


# %% [markdown]
# ## The network and the patterns
#
# Seven units obeying Pineda's eq 1, $dx_i/dt = -x_i + g(\sum_j w_{ij} x_j) + I_i$:
# units 0 and 1 carry the XOR inputs, unit 2 is a bias input ($I_2 = 1$ on every
# pattern), units 3-5 are hidden and unit 6 is the output. Every unit is connected
# to every unit, so the network is recurrent. The target of the output unit is 0.9
# where the two inputs differ and 0.1 where they agree.

# %%
N_UNITS, OUTPUT = 7, 6
INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
PATTERN_LABELS = ["00", "01", "10", "11"]


def xor_patterns() -> tuple[np.ndarray, np.ndarray]:
    """`I`, `T` of shape (4, 7): inputs 0/1 and bias 1; target 0.9 / 0.1."""
    I = np.zeros((4, N_UNITS))
    I[:, :2], I[:, 2] = INPUTS, 1.0
    T = np.zeros((4, N_UNITS))
    T[:, OUTPUT] = np.where(INPUTS[:, 0] != INPUTS[:, 1], 0.9, 0.1)
    return I, T


def xor_network(seed: int = 0, scale: float = 0.5) -> nd.FirstOrderNetwork:
    weights = scale * np.random.default_rng(seed).normal(size=(N_UNITS, N_UNITS))
    return nd.FirstOrderNetwork(
        weights,
        input_units=np.arange(N_UNITS) < 3,
        output_units=np.arange(N_UNITS) == OUTPUT,
    )


def correct(outputs, targets) -> int:
    """Patterns whose output is on the target's side of 0.5."""
    return int(np.sum((np.asarray(outputs) > 0.5) == (np.asarray(targets) > 0.5)))


# %% [markdown]
# ## Learning, deterministic and stochastic
#
# `nd.train` relaxes every pattern to its fixed point $x^*$, takes
# $\partial E/\partial W$ by recurrent backpropagation (the error signal $y$ relaxed
# by the backward dynamics) and applies one SGD step. The deterministic mode sums
# the gradient over the four patterns at each update (eq 19); the stochastic mode
# draws one pattern per update (eq 20), so it needs more updates.


# %%
def run(out: pathlib.Path, *, small: bool = False) -> dict:
    I, T = xor_patterns()
    net = xor_network()
    eta = 2.0
    steps = {"deterministic": 1000, "stochastic": 2000 if small else 4000}
    results = {
        mode: nd.train(
            net,
            I,
            T,
            optimizer=optax.sgd(eta),
            steps=steps[mode],
            mode=mode,
            key=jr.key(0),
        )
        for mode in steps
    }
    outputs = {
        mode: np.asarray(nd.relax(r.model, I, throw=True).x[:, OUTPUT])
        for mode, r in results.items()
    }
    targets = T[:, OUTPUT]

    # %% [markdown]
    # ## The figure
    #
    # Left, the total error $E_{\text{total}} = \sum_a E[a]$ along learning for both
    # modes; right, the output unit at the fixed point of the learned network for
    # each pattern, beside its target.

    # %%
    fig, (ax_curve, ax_out) = plt.subplots(1, 2, figsize=(11, 4))
    plot.learning_curves(
        ax_curve,
        {
            f"{mode} (eq {19 if mode == 'deterministic' else 20})": r.history.E_total
            for mode, r in results.items()
        },
        title=f"XOR, 7 units, SGD $\\eta$ = {eta}",
    )
    plot.outputs_vs_targets(
        ax_out,
        outputs,
        targets,
        pattern_labels=PATTERN_LABELS,
        title="output unit at the fixed point",
    )
    plot.save(fig, out / "learning_curves.png")

    # %% [markdown]
    # ## The run folder
    #
    # The learned weights (`params.npz`, the deterministic run;
    # `params_stochastic.npz`), the patterns (`data.npz`), the learning curves
    # (`history.npz`) and the headline numbers (`metrics.json`): enough to recompute
    # the outputs without neurodyn (`tests/test_demos.py` does, in NumPy).

    # %%
    trained = results["deterministic"].model
    np.savez(out / "params.npz", **model_arrays(trained))
    np.savez(out / "params_stochastic.npz", **model_arrays(results["stochastic"].model))
    np.savez(out / "data.npz", I=I, T=T)
    np.savez(
        out / "history.npz",
        **{f"E_total_{m}": np.asarray(r.history.E_total) for m, r in results.items()},
    )
    write_json(
        out / "config.json",
        {
            "demo": "xor",
            "model": model_config(trained),
            "eta": eta,
            "steps": steps,
            "output_unit": OUTPUT,
        },
    )
    metrics = {
        "output_unit": OUTPUT,
        "final_E_total": float(results["deterministic"].history.E_total[-1]),
        "correct": correct(outputs["deterministic"], targets),
        "outputs": outputs["deterministic"],
        "stochastic": {
            "final_E_total": float(results["stochastic"].history.E_total[-1]),
            "correct": correct(outputs["stochastic"], targets),
            "outputs": outputs["stochastic"],
        },
        "initial_E_total": float(results["deterministic"].history.E_total[0]),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
