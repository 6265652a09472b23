"""Demo `implicit-xor`: one implicit recurrent layer of two neurons learns XOR; a
feed-forward layer of two neurons cannot (experiment (a) of the implicit recurrent
networks paper, with its semi-gradient variants)."""

import pathlib

import equinox as eqx
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import optax

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import write_json


X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
PATTERN_LABELS = ["00", "01", "10", "11"]
# Targets 0.1 / 0.9 (the logistic never reaches 0 or 1); neuron 0 is the output.
XOR = np.where(X[:, 0] != X[:, 1], 0.9, 0.1)
NOR = np.where((X[:, 0] == 0) & (X[:, 1] == 0), 0.9, 0.1)
# Solved: every output within this distance of its target (so on its side of 0.5).
SUCCESS_MARGIN = 0.25
ACTIVATION = "logistic"
LEARNING_RATE = 0.01  # Adam, as in the paper


# The paper's relaxation: RK4 with a constant step (the default is neurodyn's solver).
# Both stop at neurodyn's steady-state test, so they reach the same fixed points.
PAPER_RELAXATION = nd.ODERelaxation(nd.RK4(), dt0=0.5)


# The variants compared, by key in the run folder: (label, lateral weights?,
# gradient method, target of neuron 1 or None, relaxation or None for the default).
VARIANTS = {
    "recurrent": ("recurrent", True, nd.ImplicitDiff(), None, None),
    "recurrent_rk4": (
        "recurrent, RK4 with constant step",
        True,
        nd.ImplicitDiff(),
        None,
        PAPER_RELAXATION,
    ),
    "feedforward": ("feed-forward", False, nd.ImplicitDiff(), None, None),
    "semi_gradient": ("semi-gradient", True, nd.SemiGradient(), None, None),
    "semi_gradient_nor": (
        "semi-gradient, neuron 1 trained to NOR",
        True,
        nd.SemiGradient(),
        NOR,
        None,
    ),
}


def gate_name(outputs) -> str:
    """The Boolean function of the inputs that outputs thresholded at 0.5 compute."""
    bits = tuple(int(v) for v in np.asarray(outputs) > 0.5)
    names = {
        (0, 0, 0, 0): "FALSE",
        (1, 1, 1, 1): "TRUE",
        (0, 0, 0, 1): "AND",
        (0, 1, 1, 1): "OR",
        (1, 0, 0, 0): "NOR",
        (1, 1, 1, 0): "NAND",
        (0, 1, 1, 0): "XOR",
        (1, 0, 0, 1): "XNOR",
        (0, 0, 1, 1): "x1",
        (0, 1, 0, 1): "x2",
        (1, 1, 0, 0): "NOT x1",
        (1, 0, 1, 0): "NOT x2",
        (0, 0, 1, 0): "x1 AND NOT x2",
        (0, 1, 0, 0): "x2 AND NOT x1",
        (1, 0, 1, 1): "x1 OR NOT x2",
        (1, 1, 0, 1): "x2 OR NOT x1",
    }
    return names[bits]


def train_one(seed: int, variant: str, steps: int) -> dict:
    """Train one network from the paper's initialisation (Q, bias uniform in
    [-0.5, 0.5), W = 0); relax every pattern from Y = 0."""
    _, lateral, method, hint, solver = VARIANTS[variant]
    net = nd.implicit_network(
        2,
        [2],
        key=jr.key(seed),
        lateral=lateral,
        activation=ACTIVATION,
        output_units=np.array([True, hint is not None]),
    )
    I = net.source(X)
    T = net.targets(XOR[:, None] if hint is None else np.stack([XOR, hint], axis=1))
    try:
        result = nd.train(
            net,
            I,
            T,
            optimizer=optax.adam(LEARNING_RATE),
            steps=steps,
            method=method,
            x0=I,
            relaxation=nd.Relaxation(solver),
        )
    except eqx.EquinoxRuntimeError:
        # The semi-gradient ignores the recurrence and can steer the layer into
        # oscillation or multistability: the relaxation then fails. An outcome.
        return {"converged": False, "success": False}
    model = result.model
    fp = nd.relax(model, I, x0=I, relaxation=nd.Relaxation(solver), throw=True)
    Y = np.asarray(fp.x[:, net.n_inputs :])
    return {
        "converged": True,
        "success": bool(np.max(np.abs(Y[:, 0] - XOR)) < SUCCESS_MARGIN),
        "outputs": Y[:, 0],
        "neuron_1": Y[:, 1],
        "neuron_1_gate": gate_name(Y[:, 1]),
        "E_total": np.asarray(result.history.E_total),
        "model": model,
    }


def run(out: pathlib.Path, *, small: bool = False) -> dict:
    seeds = range(1 if small else 10)
    steps = 400 if small else 2000
    runs = {v: [train_one(s, v, steps) for s in seeds] for v in VARIANTS}
    rates = {v: float(np.mean([r["success"] for r in rs])) for v, rs in runs.items()}

    # The run folder keeps the first solved recurrent (exact-gradient) network.
    solved = [k for k, r in enumerate(runs["recurrent"]) if r["success"]]
    kept = solved[0] if solved else 0
    best = runs["recurrent"][kept]
    layer = best["model"].layers[0]

    fig, (ax_curve, ax_out, ax_rate) = plt.subplots(1, 3, figsize=(16, 4.2))
    colors = dict(zip(VARIANTS, plt.cm.tab10(np.arange(len(VARIANTS)))))
    for variant, rs in runs.items():
        for k, r in enumerate(rs):
            if r["converged"]:
                ax_curve.semilogy(
                    np.maximum(r["E_total"], 1e-16),
                    color=colors[variant],
                    lw=0.9,
                    alpha=0.7,
                    label=VARIANTS[variant][0] if k == 0 else None,
                )
    ax_curve.set_xlabel("Adam updates")
    ax_curve.set_ylabel("$E_{\\mathrm{total}}$ over the neurons with targets")
    ax_curve.set_title(f"XOR, one layer of 2 neurons, {len(seeds)} seeds")
    ax_curve.grid(True, alpha=0.3)
    ax_curve.legend(fontsize="small")
    plot.outputs_vs_targets(
        ax_out,
        {"neuron 0 (output)": best["outputs"], "neuron 1 (free)": best["neuron_1"]},
        XOR,
        pattern_labels=PATTERN_LABELS,
        title=f"recurrent, seed {kept}: neuron 1 computes {best['neuron_1_gate']}",
    )
    bars = ax_rate.bar(
        np.arange(len(rates)), list(rates.values()), color=list(colors.values())
    )
    ax_rate.bar_label(
        bars,
        [f"{sum(r['success'] for r in rs)}/{len(rs)}" for rs in runs.values()],
    )
    ax_rate.set_xticks(
        np.arange(len(rates)),
        [VARIANTS[v][0].replace(", ", ",\n") for v in rates],
        fontsize="small",
    )
    ax_rate.set_ylim(0, 1.12)
    ax_rate.set_ylabel("fraction of seeds that solve XOR")
    ax_rate.set_title(f"success: every output within {SUCCESS_MARGIN} of its target")
    plot.save(fig, out / "implicit_xor.png")

    np.savez(
        out / "params.npz",
        W=np.asarray(layer.effective_weights),
        Q=np.asarray(layer.Q),
        bias=np.asarray(layer.bias),
    )
    np.savez(out / "data.npz", X=X, Y=XOR)
    np.savez(
        out / "history.npz",
        **{
            f"E_total_{v}_seed{k}": r["E_total"]
            for v, rs in runs.items()
            for k, r in enumerate(rs)
            if r["converged"]
        },
    )
    write_json(
        out / "config.json",
        {
            "demo": "implicit-xor",
            "activation": ACTIVATION,
            "seeds": list(seeds),
            "steps": steps,
            "optimizer": {"name": "adam", "learning_rate": LEARNING_RATE},
            "targets": {"XOR": XOR, "NOR": NOR},
            "success_margin": SUCCESS_MARGIN,
            "initial_state": "Y = 0",
            "recurrent_rk4_relaxation": "classical RK4, constant step dt0 = 0.5",
        },
    )
    metrics = {
        "activation": ACTIVATION,
        "output_units": [0],
        "success_rate": rates,
        "not_converged": {
            v: int(sum(not r["converged"] for r in rs)) for v, rs in runs.items()
        },
        "seeds": len(seeds),
        "params_seed": kept,
        "outputs": best["outputs"],
        "neuron_1": best["neuron_1"],
        "neuron_1_gates": [
            r["neuron_1_gate"] for r in runs["recurrent"] if r["success"]
        ],
        "final_E_total": {
            v: [float(r["E_total"][-1]) if r["converged"] else None for r in rs]
            for v, rs in runs.items()
        },
    }
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
