r"""Demo `zhu-rosenbaum-digits`: classifying digits with the fixed points of a tanh
rate network (Zhu & Rosenbaum 2024, section 3.2, figures 4-5).

Inputs $x^a = W_{\text{in}} p^a$ from scikit-learn's 8x8 digits (the paper used
MNIST), fixed points $r^a = \tanh(W r^a + x^a)$, logits $W_{\text{out}} r^a$ with
fixed random $W_{\text{in}}, W_{\text{out}}$, cross-entropy loss; only $W$ learns, by
$\Delta W_1$, $\Delta W_2$ or $\Delta W_3$ with mini-batch steps.
"""

import pathlib
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jaxtyping import Array, Float, Scalar
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import model_arrays, model_config, write_json


CLASSES = 10
SIGMA_W = 0.5  # initial recurrent weights sigma_w Z / sqrt(N)
IN_SCALE, OUT_SCALE = 2.0, 1.0
BATCH = 64
LEARNING_RATES = {
    "dW1": (0.1, 0.3, 1.0),
    "dW2": (0.1, 0.3, 1.0),
    "dW3": (0.1, 0.3, 1.0),
}
# float32 relaxation: loose tolerances, a bounded horizon (non-settling is recorded)
SETTINGS = dict(rtol=1e-4, atol=1e-5, t_max=200.0, max_steps=4096)
RELAX = dict(relaxation=nd.Relaxation(**SETTINGS))


class CrossEntropyReadout(eqx.Module):
    r"""$L(r, y) = -y \cdot \log \mathrm{softmax}(W_{\text{out}} r)$ with a fixed
    random read-out $W_{\text{out}}$ and a one-hot label $y$."""

    readout: Float[Array, "c n"]

    def __call__(self, r: Float[Array, " n"], y: Float[Array, " c"]) -> Scalar:
        return -jnp.sum(y * jax.nn.log_softmax(self.readout @ r))


def digits_data(n_units: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Pixels scaled to [0, 1], a 75/25 train/test split, fixed random read-in
    $W_{\\text{in}}$ $(N, 64)$ and read-out $W_{\\text{out}}$ $(10, N)$."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    pixels, labels = digits.data[order] / 16.0, digits.target[order]
    split = int(0.75 * len(labels))
    W_in = IN_SCALE * rng.normal(size=(n_units, pixels.shape[1])) / np.sqrt(64)
    W_out = OUT_SCALE * rng.normal(size=(CLASSES, n_units)) / np.sqrt(n_units)
    W0 = SIGMA_W * rng.normal(size=(n_units, n_units)) / np.sqrt(n_units)
    return {
        "pixels_train": pixels[:split],
        "labels_train": labels[:split],
        "pixels_test": pixels[split:],
        "labels_test": labels[split:],
        "W_in": W_in,
        "W_out": W_out,
        "W0": W0,
    }


def evaluate(model, I, labels, loss) -> tuple[float, float, float]:
    """Mean loss, accuracy and fraction of settled relaxations on a data set."""
    fp = nd.relax(model, I, x0=jnp.zeros_like(I), **RELAX)
    logits = np.asarray(fp.x) @ np.asarray(loss.readout).T
    log_p = (
        logits
        - np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1))[:, None]
        - logits.max(1, keepdims=True)
    )
    mean_loss = float(-np.mean(log_p[np.arange(len(labels)), labels]))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    return mean_loss, accuracy, float(np.mean(np.asarray(fp.converged)))


def train_rule(rule_name, eta, data, epochs, dtype, seed=0):
    """Mini-batch learning of $W$ by one rule; the history of losses, accuracies."""
    W_in = jnp.asarray(data["W_in"], dtype)
    I_train = jnp.asarray(data["pixels_train"], dtype) @ W_in.T
    I_test = jnp.asarray(data["pixels_test"], dtype) @ W_in.T
    Y_train = jax.nn.one_hot(data["labels_train"], CLASSES, dtype=dtype)
    loss = CrossEntropyReadout(jnp.asarray(data["W_out"], dtype))
    model = nd.RateNetwork(jnp.asarray(data["W0"], dtype), activation=nd.tanh)
    rule = {
        "dW1": nd.DW1(),
        "dW2": nd.DW2(jnp.asarray(eta, dtype)),
        "dW3": nd.DW3(),
    }[rule_name]
    rng = np.random.default_rng(seed)
    history = {k: [] for k in ("step", "train_loss", "train_accuracy", "settled")}
    tests = {k: [] for k in ("test_step", "test_loss", "test_accuracy", "test_settled")}
    diverged = False
    step = 0
    for _ in range(epochs):
        order = rng.permutation(I_train.shape[0])
        for start in range(0, len(order) - BATCH + 1, BATCH):
            if step % 10 == 0:
                for k, v in zip(
                    tests, (step, *evaluate(model, I_test, data["labels_test"], loss))
                ):
                    tests[k].append(v)
            batch = order[start : start + BATCH]
            try:
                J, D, fp = nd.rule_direction(
                    rule,
                    model,
                    I_train[batch],
                    Y_train[batch],
                    loss=loss,
                    method=nd.RecurrentBackprop(),  # matrix-free adjoint for dW1
                    x0=jnp.zeros((BATCH, model.n_units), dtype),
                    throw=False,
                    **RELAX,
                )
            except eqx.EquinoxRuntimeError:  # the adjoint of an unstable fixed point
                diverged = True
                break
            logits = np.asarray(fp.x) @ np.asarray(loss.readout).T
            correct = np.argmax(logits, 1) == data["labels_train"][batch]
            history["step"].append(step)
            history["train_loss"].append(float(J))
            history["train_accuracy"].append(float(np.mean(correct)))
            history["settled"].append(float(np.mean(np.asarray(fp.converged))))
            if not np.all(np.isfinite(np.asarray(D))):
                diverged = True
                break
            model = eqx.tree_at(lambda m: m.weights, model, model.weights - eta * D)
            step += 1
        if diverged:
            break
    if not diverged:
        for k, v in zip(
            tests, (step, *evaluate(model, I_test, data["labels_test"], loss))
        ):
            tests[k].append(v)
    return model, {**history, **tests, "diverged": diverged}


def run(out: pathlib.Path, *, small: bool = False) -> dict:
    # One BLAS thread: with JAX's and other processes' threads competing for a few
    # cores, multithreaded OpenBLAS (used by NumPy and by JAX's CPU LAPACK calls)
    # makes each 100 x 100 solve or eigendecomposition 30-60 times slower.
    with threadpool_limits(1):
        return _run(out, small=small)


def _run(out: pathlib.Path, *, small: bool) -> dict:
    dtype = jnp.float32
    n_units = 50 if small else 300
    epochs = 1 if small else 3
    rates = {r: etas[1:2] if small else etas for r, etas in LEARNING_RATES.items()}
    data = digits_data(n_units)
    results, seconds = {}, {}
    for rule, etas in rates.items():
        for eta in etas:
            begin = time.perf_counter()
            results[rule, eta] = train_rule(rule, eta, data, epochs, dtype)
            seconds[f"{rule}_{eta:g}"] = time.perf_counter() - begin

    _figure(out, results, rates)
    best = {
        rule: max(etas, key=lambda e: results[rule, e][1]["test_accuracy"][-1])
        for rule, etas in rates.items()
    }
    np.savez(out / "params.npz", **model_arrays(results["dW3", best["dW3"]][0]))
    np.savez(
        out / "final_weights.npz",
        **{
            f"W_{rule}_{eta:g}": np.asarray(model.weights)
            for (rule, eta), (model, _) in results.items()
        },
    )
    np.savez(
        out / "data.npz",
        **{k: v for k, v in data.items() if k != "W0"},
        I_test=data["pixels_test"] @ data["W_in"].T,
        W0=data["W0"],
    )
    np.savez(
        out / "history.npz",
        **{
            f"{key}_{rule}_{eta:g}": np.asarray(values)
            for (rule, eta), (_, h) in results.items()
            for key, values in h.items()
            if key != "diverged"
        },
    )
    write_json(
        out / "config.json",
        {
            "demo": "zhu-rosenbaum-digits",
            "model": model_config(results["dW3", best["dW3"]][0]),
            "N": n_units,
            "epochs": epochs,
            "batch": BATCH,
            "learning_rates": rates,
            "relaxation": SETTINGS,
            "sigma_w": SIGMA_W,
            "dtype": "float32",
        },
    )

    def final(rule, eta, key):
        return results[rule, eta][1][key][-1]

    metrics = {
        "test_accuracy": {
            f"{r}_{e:g}": final(r, e, "test_accuracy") for (r, e) in results
        },
        "test_loss": {f"{r}_{e:g}": final(r, e, "test_loss") for (r, e) in results},
        "initial_test_accuracy": results["dW1", rates["dW1"][0]][1]["test_accuracy"][0],
        "best_learning_rate": best,
        "best_test_accuracy": {r: final(r, best[r], "test_accuracy") for r in rates},
        "min_settled_fraction": {
            f"{r}_{e:g}": float(min(h["settled"])) for (r, e), (_, h) in results.items()
        },
        "diverged": {f"{r}_{e:g}": h["diverged"] for (r, e), (_, h) in results.items()},
        "params_rule": f"dW3_{best['dW3']:g}",
        "seconds": seconds,
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _figure(out, results, rates):
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), sharey="row")
    for col, rule in enumerate(rates):
        ax_loss, ax_acc = axes[0, col], axes[1, col]
        for eta, color in zip(rates[rule], ("tab:blue", "tab:orange", "tab:green")):
            h = results[rule, eta][1]
            smooth = np.convolve(h["train_loss"], np.ones(5) / 5, mode="valid")
            ax_loss.plot(
                h["step"][4:],
                smooth,
                color=color,
                alpha=0.5,
                lw=1,
                label=f"train, $\\eta$ = {eta:g}",
            )
            ax_loss.plot(
                h["test_step"],
                h["test_loss"],
                color=color,
                marker="o",
                ms=3,
                label=f"test, $\\eta$ = {eta:g}",
            )
            ax_acc.plot(
                h["test_step"],
                h["test_accuracy"],
                color=color,
                marker="o",
                ms=3,
                label=f"test, $\\eta$ = {eta:g}",
            )
            if h["diverged"]:  # the adjoint failed: the fixed points lost stability
                ax_acc.plot(h["step"][-1], h["train_accuracy"][-1], "x", color=color)
                ax_acc.annotate(
                    "fixed points unstable",
                    (h["step"][-1], h["train_accuracy"][-1]),
                    xytext=(6, 6),
                    textcoords="offset points",
                    color=color,
                    fontsize="small",
                )
        ax_loss.set_yscale("log")
        ax_loss.set_title(f"$\\Delta W_{rule[-1]}$: cross-entropy")
        ax_loss.set_xlabel("update")
        ax_acc.set_title(f"$\\Delta W_{rule[-1]}$: test accuracy")
        ax_acc.set_xlabel("update")
        ax_acc.set_ylim(0, 1)
        for ax in (ax_loss, ax_acc):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
    axes[0, 0].set_ylabel("loss")
    axes[1, 0].set_ylabel("accuracy")
    plot.save(fig, out / "learning_curves.png")


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
