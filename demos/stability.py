"""Demo `stability`: a linear rate network learned by gradient descent loses
stability (Hopf) at a large learning rate; the loss is detected and learning stops."""

import pathlib

import equinox as eqx
import jax
import matplotlib.pyplot as plt
import numpy as np
import optax

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import (
    model_arrays,
    model_config,
    relaxation_config,
    write_json,
)


# %% [markdown]
# ## A target close to the stability boundary
#
# Zhu & Rosenbaum's linear rate network $\tau\dot r = -r + W r + x$ on 2 units.
# The targets are the fixed points of a ground truth $W^*$ whose Jacobian
# $(-1 + W^*)/\tau$ has eigenvalues $-0.15 \pm 0.6i$: stable, but close to the
# imaginary axis.

# %%
# Zhu & Rosenbaum's linear model r = W r + x on 2 units. The targets are made by a
# ground truth W* = 0.85 + 0.6 R (R a quarter turn), whose Jacobian (-1 + W*) has
# eigenvalues -0.15 +- 0.6i: the optimum sits close to the stability boundary.
A_STAR, B_STAR = 0.85, 0.6
ETAS = (0.2, 0.6)


def ground_truth() -> np.ndarray:
    return A_STAR * np.eye(2) + B_STAR * np.array([[0.0, -1.0], [1.0, 0.0]])


def patterns() -> tuple[np.ndarray, np.ndarray]:
    """`I` = the unit inputs (2, 2) and `T` = the fixed points of W* under them."""
    I = np.eye(2)
    T = np.linalg.solve(np.eye(2) - ground_truth(), I.T).T
    return I, T


def finite_or_none(value) -> float | None:
    """A JSON-safe number: None where the relaxation no longer settles."""
    value = float(value)
    return value if np.isfinite(value) else None


def as_pair(value) -> list[float]:
    value = complex(value)
    return [value.real, value.imag]


# %% [markdown]
# ## Two learning rates, watched by a stability monitor
#
# Gradient descent from $W = 0$ with $\eta = 0.2$ and $\eta = 0.6$.
# `nd.StabilityMonitor` follows the leading eigenvalue of the linearisation at each
# update's fixed point and, with `on_loss="stop"`, ends a run whose fixed point
# loses stability: a real eigenvalue crossing zero (saddle-node) or a complex pair
# crossing the imaginary axis (Hopf). With the larger rate the weights overshoot
# the boundary.


# %%
def run(out: pathlib.Path, *, small: bool = False) -> dict:
    I, T = patterns()
    start = nd.RateNetwork(np.zeros((2, 2)), activation="identity")
    steps = 25 if small else 100
    results, monitors = {}, {}
    for eta in ETAS:
        monitors[eta] = nd.StabilityMonitor(I, on_loss="stop")
        results[eta] = nd.train(
            start,
            I,
            T,
            optimizer=optax.sgd(eta),
            steps=steps,
            method=nd.ImplicitDiff(),
            snapshot_every=1,
            callback=monitors[eta],
        )
    traces = {eta: monitors[eta].trace() for eta in ETAS}
    label = {eta: f"SGD $\\eta$ = {eta}" for eta in ETAS}

    # %% [markdown]
    # ## Figures
    #
    # The leading eigenvalue along learning with the update where stability was
    # lost; the error curves; the forward and adjoint spectra at the end of each
    # run (Almeida: they coincide); and the Hessian spectrum of $E$ along the
    # stable run.

    # %%
    fig, (ax_lead, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    plot.leading_eigenvalue_along(
        ax_lead,
        {label[e]: (np.asarray(t.steps), t.leading) for e, t in traces.items()},
        losses={
            label[e]: None if t.loss is None else t.loss.step for e, t in traces.items()
        },
        title="leading eigenvalue of $(-1 + W)/\\tau$ along learning",
    )
    plot.learning_curves(
        ax_loss,
        {label[e]: r.history.E_total for e, r in results.items()},
        title="$E_{\\mathrm{total}}$ (the run that lost stability stops)",
    )
    plot.save(fig, out / "leading_eigenvalue.png")

    fig, axes = plt.subplots(1, len(ETAS), figsize=(11, 4.2))
    for ax, eta in zip(axes, ETAS):
        trained = results[eta].model
        x = monitors[eta].states[-1]
        plot.spectra_complex_plane(
            ax,
            nd.spectrum(trained, x, I),
            nd.adjoint_spectrum(trained, x, I),
            title=f"end of {label[eta]} (update {int(traces[eta].steps[-1])})",
        )
        path = np.asarray(traces[eta].leading[:, 0])
        for sign in (1, -1):  # the leading pair's path during learning
            ax.plot(path.real, sign * path.imag, color="grey", lw=0.8, alpha=0.6)
        ax.set_xlim(-1.45, 0.3)
    plot.save(fig, out / "spectra.png")

    stable = results[ETAS[0]]
    every = 5
    picked = np.arange(0, stable.history.snapshot_steps.shape[0], every)
    snapshots = eqx_index(stable.history.snapshots, picked)
    hessian_eigs = nd.hessian_along(snapshots, I, T)
    fig, ax = plt.subplots(figsize=(6, 4))
    plot.hessian_spectrum_along(
        ax,
        np.asarray(stable.history.snapshot_steps)[picked],
        hessian_eigs,
        title=f"Hessian spectrum along {label[ETAS[0]]}",
    )
    plot.save(fig, out / "hessian_spectrum.png")

    lost = results[ETAS[-1]]
    np.savez(out / "params.npz", **model_arrays(lost.model))
    np.savez(out / "params_stable.npz", **model_arrays(stable.model))
    np.savez(out / "data.npz", I=I, T=T)
    np.savez(
        out / "history.npz",
        **{
            f"E_total_eta_{e}": np.asarray(r.history.E_total)
            for e, r in results.items()
        },
        **{f"leading_eta_{e}": np.asarray(t.leading) for e, t in traces.items()},
        hessian_steps=np.asarray(stable.history.snapshot_steps)[picked],
        hessian_eigenvalues=np.asarray(hessian_eigs),
    )
    write_json(
        out / "config.json",
        {
            "demo": "stability",
            "model": model_config(start),
            "ground_truth": ground_truth(),
            "etas": list(ETAS),
            "steps": steps,
            "method": "ImplicitDiff",
            "on_loss": "stop",
            "relaxation": relaxation_config(nd.Relaxation()),
        },
    )
    runs = {}
    for eta in ETAS:
        trace, loss = traces[eta], traces[eta].loss
        runs[str(eta)] = {
            "updates": int(trace.steps[-1]),
            "leading_start": as_pair(trace.leading[0, 0]),
            "leading_end": as_pair(trace.leading[-1, 0]),
            "lost_at_update": None if loss is None else int(loss.step),
            "kind": None if loss is None else loss.kind,
            "crossing": None if loss is None else loss.crossing,
            "final_E_total": finite_or_none(results[eta].history.E_total[-1]),
            "almeida_gap_end": nd.almeida_check(
                results[eta].model, monitors[eta].states[-1], I
            ),
        }
    headline = runs[str(ETAS[-1])]
    metrics = {
        "eta": ETAS[-1],
        "leading_eigenvalue_start": headline["leading_start"],
        "leading_eigenvalue_end": headline["leading_end"],
        "lost_at_update": headline["lost_at_update"],
        "kind": headline["kind"],
        "runs": runs,
        "hessian_min_eigenvalue_end": float(hessian_eigs[-1].min()),
        "hessian_max_eigenvalue_end": float(hessian_eigs[-1].max()),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def eqx_index(models, picked):
    """The models at the snapshot indices `picked` (every array indexed)."""
    arrays, static = eqx.partition(models, eqx.is_array)
    return eqx.combine(jax.tree.map(lambda a: a[picked], arrays), static)


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
