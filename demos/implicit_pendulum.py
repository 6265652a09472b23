r"""Demo `implicit-pendulum`: regress the parameters $(\omega_0, \delta)$ of a damped
pendulum from its trajectory, with two implicit recurrent layers and feedback
(exact gradient and semi-gradient) against a feed-forward network with the same
number of parameters (experiment (b) of the implicit recurrent networks paper)."""

import pathlib

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import write_json


DT = 0.1  # sampling step of the trajectory, as in the paper
# Samples x(0), x(dt), ..., x(35 dt). 36 makes the parameter counts equal: two
# layers (5, 2) with lateral W and feedback R have 36*5 + 25 + 5 + 2*5 + 4 + 2 + 5*2
# = 236 parameters, a feed-forward (6, 2) network 36*6 + 6 + 2*6 + 2 = 236.
N_SAMPLES = 36
HIDDEN = 5
HIDDEN_FEEDFORWARD = 6
# The paper's sigmoid: f' <= 1/4 keeps the recurrent loops further from
# instability than tanh (with tanh, exact-gradient training drove some networks
# through a Hopf bifurcation).
ACTIVATION = "logistic"
LEARNING_RATE = 0.01  # Adam, as in the paper
BATCH = 100
# Relaxation tolerances for training and testing (the paper's RK4 reaches ~1e-8 in
# the residual; a looser steady-state test is enough for a gradient step).
SETTINGS = dict(rtol=1e-5, atol=1e-7)
RELAX = dict(relaxation=nd.Relaxation(**SETTINGS))


def pendulum_trajectories(
    omega0: Float[Array, " p"], delta: Float[Array, " p"], y0: Float[Array, "p 2"]
) -> Float[Array, "p k"]:
    r"""$x(k\,\Delta t)$, $k < $ `N_SAMPLES`, of $\ddot x + 2\delta\dot x
    + \omega_0^2 x = 0$ from $(x_0, v_0)$ = `y0`, integrated by diffrax."""

    def one(w, d, start):
        def field(t, y, args):
            del t, args
            return jnp.stack([y[1], -2 * d * y[1] - w**2 * y[0]])

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            t0=0.0,
            t1=DT * (N_SAMPLES - 1),
            dt0=DT / 10,
            y0=start,
            saveat=diffrax.SaveAt(ts=DT * jnp.arange(N_SAMPLES)),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
        )
        return sol.ys[:, 0]

    return jax.jit(jax.vmap(one))(omega0, delta, y0)


def pendulum_data(key: PRNGKeyArray, n: int) -> dict[str, np.ndarray]:
    r"""$n$ trajectories with $\omega_0 \sim U[1, 2]$, $\delta \sim U[0, 2]$,
    $x_0, v_0 \sim \mathcal N(0, 2)$ (variance 2), and targets scaled to $[0, 1]$
    (the range of the logistic): $(\omega_0 - 1, \delta / 2)$."""
    k_omega, k_delta, k_start = jr.split(key, 3)
    omega0 = jr.uniform(k_omega, (n,), minval=1.0, maxval=2.0)
    delta = jr.uniform(k_delta, (n,), minval=0.0, maxval=2.0)
    y0 = jnp.sqrt(2.0) * jr.normal(k_start, (n, 2))
    return {
        "trajectories": np.asarray(pendulum_trajectories(omega0, delta, y0)),
        "Y": np.stack([omega0 - 1.0, delta / 2], axis=1),
        "omega0": np.asarray(omega0),
        "delta": np.asarray(delta),
    }


def networks(key: PRNGKeyArray) -> dict:
    """The three models of the comparison (paper initialisation): the network and
    its gradient method."""
    k_rec, k_ff = jr.split(key)
    recurrent = nd.implicit_network(
        N_SAMPLES, [HIDDEN, 2], key=k_rec, feedback=[(1, 0)], activation=ACTIVATION
    )
    feedforward = nd.implicit_network(
        N_SAMPLES,
        [HIDDEN_FEEDFORWARD, 2],
        key=k_ff,
        lateral=False,
        activation=ACTIVATION,
    )
    return {
        "recurrent": (recurrent, nd.ImplicitDiff()),
        "semi_gradient": (
            recurrent,
            nd.SemiGradient(recurrent.feedforward_connections),
        ),
        "feedforward": (feedforward, nd.ImplicitDiff()),
    }


LABELS = {
    "recurrent": "2 implicit layers + feedback (exact gradient)",
    "semi_gradient": "2 implicit layers + feedback (semi-gradient)",
    "feedforward": "2 feed-forward layers",
}


def relaxed_mse(net: nd.ImplicitRecurrentNetwork, X, Y) -> float:
    """Mean squared error of the relaxed outputs over patterns and both targets."""
    I = net.source(X)
    x = nd.relax(net, I, x0=I, throw=True, **RELAX).x
    return float(jnp.mean((net.outputs(x) - Y) ** 2))


@eqx.filter_jit
def _adam_step(params, opt_state, grads, optimizer):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return eqx.apply_updates(params, updates), opt_state


def train_model(net, method, data, *, epochs: int, seed: int):
    r"""Minibatch Adam on $E = \tfrac12 \sum (T - Y^*)^2$.

    Returns the trained network, the mean train MSE of every epoch, the test MSE
    after every epoch (and before the first), and the epoch in which a relaxation
    failed (the network lost its stable fixed point), or None. A failed run stops
    there: its network is the last one that relaxed and its curves end in NaN."""
    optimizer = optax.adam(LEARNING_RATE)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    n = data["X_train"].shape[0]
    train_curve = np.full(epochs, np.nan)
    test_curve = np.full(epochs + 1, np.nan)
    test_curve[0] = relaxed_mse(net, data["X_test"], data["Y_test"])
    for epoch in range(epochs):
        order = rng.permutation(n)
        losses, state = [], (params, opt_state)
        try:
            for start in range(0, n - BATCH + 1, BATCH):
                batch = order[start : start + BATCH]
                model = eqx.combine(state[0], static)
                I = model.source(data["X_train"][batch])
                E, grads = nd.value_and_grad(
                    model,
                    I,
                    model.targets(data["Y_train"][batch]),
                    method=method,
                    x0=I,
                    **RELAX,
                )
                state = _adam_step(*state, grads, optimizer)
                losses.append(2 * float(E) / (BATCH * 2))
            test = relaxed_mse(
                eqx.combine(state[0], static), data["X_test"], data["Y_test"]
            )
        except eqx.EquinoxRuntimeError:
            return eqx.combine(params, static), train_curve, test_curve, epoch
        params, opt_state = state
        train_curve[epoch] = np.mean(losses)
        test_curve[epoch + 1] = test
    return eqx.combine(params, static), train_curve, test_curve, None


def network_arrays(net: nd.ImplicitRecurrentNetwork) -> dict[str, np.ndarray]:
    """`W0, Q0, bias0, W1, ...` per layer (W with absent connections zeroed) and
    `R{j}{i}` for feedback from layer j to layer i."""
    arrays = {}
    for l, layer in enumerate(net.layers):
        arrays[f"W{l}"] = np.asarray(layer.effective_weights)
        arrays[f"Q{l}"] = np.asarray(layer.Q)
        arrays[f"bias{l}"] = np.asarray(layer.bias)
    for (j, i), R in zip(net.feedback_pairs, net.feedback):
        arrays[f"R{j}{i}"] = np.asarray(R)
    return arrays


def run(out: pathlib.Path, *, small: bool = False) -> dict:
    n_train, n_test = (200, 100) if small else (1600, 400)
    seeds = range(1 if small else 4)
    epochs = 2 if small else 150
    raw = pendulum_data(jr.key(0), n_train + n_test)
    scale = float(np.std(raw["trajectories"][:n_train]))  # inputs of order one
    X = raw["trajectories"] / scale
    data = {
        "X_train": X[:n_train],
        "Y_train": raw["Y"][:n_train],
        "X_test": X[n_train:],
        "Y_test": raw["Y"][n_train:],
    }

    curves = {name: {"train": [], "test": []} for name in LABELS}
    lost = {name: [] for name in LABELS}
    n_parameters, kept = {}, {}
    for seed in seeds:
        for name, (net, method) in networks(jr.key(seed + 1)).items():
            n_parameters[name] = net.n_parameters
            trained, train_curve, test_curve, failed = train_model(
                net, method, data, epochs=epochs, seed=seed
            )
            curves[name]["train"].append(train_curve)
            curves[name]["test"].append(test_curve)
            lost[name].append(failed)
            if name == "recurrent" and failed is None:
                kept.setdefault(seed, trained)
    curves = {
        name: {k: np.stack(v) for k, v in c.items()} for name, c in curves.items()
    }
    final = {name: c["test"][:, -1] for name, c in curves.items()}
    mean_final = {name: float(np.nanmean(v)) for name, v in final.items()}
    winner = min(mean_final, key=mean_final.get)
    # The run folder keeps the first exact-gradient recurrent network that finished.
    kept_seed = min(kept)
    kept = kept[kept_seed]

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    epochs_axis = np.arange(epochs + 1)
    for ax, kind, xs in (
        (axes[0], "train", epochs_axis[1:]),
        (axes[1], "test", epochs_axis),
    ):
        for name, c in curves.items():
            finished = np.sum(np.isfinite(c[kind]), axis=0)
            mean = np.nanmean(c[kind], axis=0)
            sem = np.nanstd(c[kind], axis=0) / np.sqrt(finished)
            ax.semilogy(xs, mean, label=f"{LABELS[name]} ({n_parameters[name]} p.)")
            ax.fill_between(xs, mean - sem, mean + sem, alpha=0.25)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{kind} MSE (scaled targets)")
        ax.set_title(f"{kind} error, mean $\\pm$ s.e.m. over {len(seeds)} seeds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
    I_test = kept.source(data["X_test"])
    predicted = np.asarray(
        kept.outputs(nd.relax(kept, I_test, x0=I_test, throw=True, **RELAX).x)
    )
    for k, (label, marker) in enumerate(
        (("$\\omega_0 - 1$", "o"), ("$\\delta / 2$", "s"))
    ):
        axes[2].scatter(
            data["Y_test"][:, k], predicted[:, k], s=6, marker=marker, label=label
        )
    axes[2].plot([0, 1], [0, 1], color="grey", lw=0.8)
    axes[2].set_xlabel("true (scaled)")
    axes[2].set_ylabel("predicted")
    axes[2].set_title(f"recurrent network, seed {kept_seed}, test set")
    axes[2].legend(fontsize="small")
    plot.save(fig, out / "implicit_pendulum.png")

    np.savez(out / "params.npz", **network_arrays(kept))
    np.savez(out / "data.npz", **data, scale=scale)
    np.savez(
        out / "history.npz",
        **{f"{k}_mse_{name}": c[k] for name, c in curves.items() for k in c},
    )
    write_json(
        out / "config.json",
        {
            "demo": "implicit-pendulum",
            "activation": ACTIVATION,
            "n_samples": N_SAMPLES,
            "dt": DT,
            "hidden": {"recurrent": HIDDEN, "feedforward": HIDDEN_FEEDFORWARD},
            "n_train": n_train,
            "n_test": n_test,
            "batch": BATCH,
            "epochs": epochs,
            "seeds": list(seeds),
            "optimizer": {"name": "adam", "learning_rate": LEARNING_RATE},
            "relaxation": SETTINGS,
        },
    )
    metrics = {
        "activation": ACTIVATION,
        "n_parameters": n_parameters,
        "final_test_mse": final,
        "mean_final_test_mse": mean_final,
        "best": winner,
        "params_seed": kept_seed,
        "params_test_mse": float(final["recurrent"][list(seeds).index(kept_seed)]),
        "lost_fixed_point_in_epoch": lost,
        "finished": {name: sum(e is None for e in v) for name, v in lost.items()},
        "initial_test_mse": {name: c["test"][:, 0] for name, c in curves.items()},
    }
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
