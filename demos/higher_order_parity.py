"""Demo `higher-order-parity`: tensor networks without hidden units on XOR and
3-bit parity (Pineda example 2), first order against higher order."""

import itertools
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jaxtyping import ArrayLike, Bool

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import model_arrays, model_config, write_json


# %% [markdown]
# ## Parity without hidden units
#
# XOR (2 bits) and 3-bit parity are not linearly separable: a first-order network
# without hidden units cannot solve them. Pineda's higher-order units (eqs 21-27)
# sum products of activities, $u_i = \sum w_{ij\dots l}\, f(x_j)\cdots f(x_l)$, so an
# order-$n$ output unit computes $g$ of a polynomial of degree at most $n$ in the
# inputs, which is enough for $n$-bit parity.

# %%
# Units: `bits` input units, one bias unit, one output unit (the last). No hidden
# units. The input and bias units are pure inputs: their incoming weights are zero
# and never trained, so they settle at x = g(0) + I = 1/2 + I. The sources are
# I = b - 1/2 for the bits b in {-1, +1} and I = 1/2 for the bias, so the inputs
# settle at x = b and the bias unit at x = 1. The inner function f is the identity,
# so an order-n output unit computes g of a polynomial of degree <= n in the bits
# (the bias unit supplies the lower-degree terms); order 1 is exactly
# `nd.FirstOrderNetwork`.
TASKS = {"xor": 2, "parity3": 3}
ORDERS = {"xor": (1, 2), "parity3": (1, 2, 3)}
ETA = 0.25
CHUNK = 25  # updates per `nd.train` call; SGD has no state, so chunks are exact
MARGIN = 0.3  # "solved": every output on its target's side of 0.5 by this much
# Steady-state tolerances. The default atol 1e-8 is below the float32 round-off of
# the adjoint residual -z + A^T z + J (~ eps |J|) when |z| << |J|: a batched adjoint
# relaxation can then miss the steady-state event and report non-convergence.
TOLERANCES = {"rtol": 1e-6, "atol": 1e-6}
RELAX = dict(relaxation=nd.Relaxation(**TOLERANCES))


def parity_patterns(bits: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`I`, `T` of shape (2**bits, bits + 2) and the pattern labels: target 0.9 on
    the output unit for an odd number of 1-bits, else 0.1."""
    B = np.array(list(itertools.product([0, 1], repeat=bits)), dtype=float)
    n = bits + 2
    I = np.zeros((len(B), n))
    I[:, :bits] = (2 * B - 1) - 0.5
    I[:, bits] = 0.5
    T = np.zeros((len(B), n))
    T[:, -1] = np.where(B.sum(axis=1) % 2 == 1, 0.9, 0.1)
    return I, T, ["".join(str(int(b)) for b in row) for row in B]


def parity_network(bits: int, order: int, seed: int = 0) -> nd.HigherOrderNetwork:
    """Small random weights into the output unit, zero weights into the others."""
    n = bits + 2
    output = np.arange(n) == n - 1
    weights = 0.1 * np.random.default_rng(seed).normal(size=(n,) * (order + 1))
    weights[~output] = 0.0
    return nd.HigherOrderNetwork(
        weights,
        activation=nd.logistic,
        inner=nd.identity,
        input_units=~output,
        output_units=output,
    )


def output_row_only(
    output_units: Bool[ArrayLike, " n"],
) -> optax.GradientTransformation:
    """Zero every update except those of the weights into the output units."""
    mask = jnp.asarray(output_units)

    def keep(updates, params=None):
        del params
        return jax.tree.map(
            lambda u: u * mask.reshape(-1, *[1] * (u.ndim - 1)).astype(u.dtype),
            updates,
        )

    return optax.stateless(keep)


def train_in_chunks(net, I, T, steps: int) -> tuple[nd.HigherOrderNetwork, dict]:
    """SGD with learning rate `ETA` (Pineda's eq 19) on the output unit's weights,
    `CHUNK` updates per `nd.train` call. If a relaxation stops converging, training
    ends with the last model whose relaxations all settled, and the update at which
    it failed is reported."""
    optimizer = optax.chain(optax.sgd(ETA), output_row_only(net.output_units))
    curve, failed_at, done = [], None, 0
    while done < steps:
        n = min(CHUNK, steps - done)
        try:
            result = nd.train(net, I, T, optimizer=optimizer, steps=n, **RELAX)
        except eqx.EquinoxRuntimeError as error:
            reason = str(error).split("\n")
            failed_at = {
                "updates_done": done,
                "message": next((r for r in reason if "did not converge" in r), ""),
            }
            break
        E = np.asarray(result.history.E_total)
        curve.extend(E if not curve else E[1:])
        net, done = result.model, done + n
    return net, {"E_total": np.asarray(curve), "failed": failed_at}


def outcome(net, I, T) -> dict:
    """The output unit at the fixed points and how well it separates the classes."""
    fp = nd.relax(net, I, throw=True, **RELAX)
    x = np.asarray(fp.x[:, -1])
    t = T[:, -1]
    margins = np.where(t > 0.5, x - 0.5, 0.5 - x)
    return {
        "outputs": x,
        "targets": t,
        "correct": int(np.sum(margins > 0)),
        "min_margin": float(np.min(margins)),
        "solved": bool(np.min(margins) >= MARGIN),
    }


# %% [markdown]
# ## Training every order on every task
#
# Each network learns by SGD through `nd.train` in chunks of `CHUNK` updates; a
# task counts as solved when every output is on its target's side of 0.5 by
# `MARGIN`.


# %%
def run(out: pathlib.Path, *, small: bool = False) -> dict:
    steps = 100 if small else 400
    metrics, curves, outputs, data = {}, {}, {}, {}
    models, failures = {}, {}
    for task, bits in TASKS.items():
        I, T, labels = parity_patterns(bits)
        data[f"{task}_I"], data[f"{task}_T"] = I, T
        metrics[task] = {}
        for order in ORDERS[task]:
            net, history = train_in_chunks(parity_network(bits, order), I, T, steps)
            models[task, order] = net
            curves[task, order] = history["E_total"]
            failures[task, order] = history["failed"] is not None
            result = outcome(net, I, T)
            outputs[task, order] = result["outputs"]
            metrics[task][f"order{order}"] = {
                **result,
                "initial_E_total": float(history["E_total"][0]),
                "final_E_total": float(history["E_total"][-1]),
                "updates": len(history["E_total"]) - 1,
                "relaxation_failed": history["failed"],
            }
        metrics[task]["labels"] = labels

    names = {1: "first order", 2: "second order", 3: "third order"}
    titles = {"xor": "XOR (2 bits)", "parity3": "3-bit parity"}

    def label(task, order):
        stopped = ", stopped: relaxation failed" if failures[task, order] else ""
        return f"{names[order]} ($n$ = {order}){stopped}"

    # %% [markdown]
    # ## The figure
    #
    # Top, the error along learning for each order; bottom, the output of each
    # pattern at the fixed point of the trained networks beside its target.

    # %%
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for column, task in enumerate(TASKS):
        plot.learning_curves(
            axes[0, column],
            {label(task, o): curves[task, o] for o in ORDERS[task]},
            title=f"{titles[task]}: no hidden units, SGD $\\eta$ = {ETA}",
        )
        plot.outputs_vs_targets(
            axes[1, column],
            {names[o]: outputs[task, o] for o in ORDERS[task]},
            data[f"{task}_T"][:, -1],
            pattern_labels=metrics[task]["labels"],
            title=f"{titles[task]}: output unit at the fixed point",
        )
    plot.save(fig, out / "learning_curves.png")

    np.savez(out / "params.npz", **model_arrays(models["xor", 2]))
    for (task, order), net in models.items():
        np.savez(out / f"params_{task}_order{order}.npz", **model_arrays(net))
    np.savez(out / "data.npz", I=data["xor_I"], T=data["xor_T"], **data)
    np.savez(
        out / "history.npz",
        **{f"E_total_{t}_order{o}": c for (t, o), c in curves.items()},
    )
    write_json(
        out / "config.json",
        {
            "demo": "higher-order-parity",
            "models": {
                f"{t}_order{o}": model_config(net) for (t, o), net in models.items()
            },
            "eta": ETA,
            "steps": steps,
            "trained": "weights into the output unit only (input and bias units are "
            "pure inputs)",
            "coding": "bits b in {-1, +1} as I = b - 1/2 (x = b); bias I = 1/2 "
            "(x = 1); targets 0.9 (odd) / 0.1 (even)",
            "solved_margin": MARGIN,
            "tolerances": TOLERANCES,
        },
    )
    metrics["solved"] = {
        task: {f"order{o}": metrics[task][f"order{o}"]["solved"] for o in ORDERS[task]}
        for task in TASKS
    }
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
