"""Demo `first-order`: one network, its forward and backward relaxations, and the
three gradient methods side by side (Pineda, example 1)."""

import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import model_arrays, model_config, write_json


# %% [markdown]
# ## A network and four patterns
#
# Eight units obeying Pineda's eq 1, $dx/dt = -x + g(Wx) + I$, with random weights
# $W_{ij} \sim \mathcal N(0, 1/n)$; units 0 and 1 receive the inputs, units 6 and 7
# are the outputs, whose targets $T$ are drawn in $[0.1, 0.9]$.


# %%
def run(out: pathlib.Path, *, small: bool = False) -> dict:
    n, p = 8, 4
    rng = np.random.default_rng(0)
    net = nd.FirstOrderNetwork(
        rng.normal(size=(n, n)) / np.sqrt(n),
        input_units=np.arange(n) < 2,
        output_units=np.arange(n) >= n - 2,
    )
    I = jnp.asarray(rng.uniform(0, 1, size=(p, n)), dtype=float)
    T = jnp.asarray(rng.uniform(0.1, 0.9, size=(p, n)), dtype=float)

    # %% [markdown]
    # ## The fixed point and three gradients
    #
    # `nd.relax` finds the fixed points $x^*$ of the four patterns. The gradient
    # $\partial E/\partial W$ of $E = \tfrac12\sum_{k \in O}(T_k - x^*_k)^2$ is taken
    # three ways: recurrent backpropagation (Pineda's backward dynamics, eqs 15-17),
    # a direct linear solve of the adjoint fixed point, and reverse-mode through the
    # solver's steps. They must agree; each is timed after its compilation.

    # %%
    fp = nd.relax(net, I, throw=True)
    methods = (nd.RecurrentBackprop(), nd.ImplicitDiff(), nd.UnrolledBPTT())
    grads, seconds = {}, {}
    for method in methods:
        name = type(method).__name__
        jax.block_until_ready(nd.value_and_grad(net, I, T, method=method))  # compile
        start = time.perf_counter()
        E, g = jax.block_until_ready(nd.value_and_grad(net, I, T, method=method))
        seconds[name] = time.perf_counter() - start
        grads[name] = np.asarray(g.weights)
    reference = grads["RecurrentBackprop"]
    disagreement = {
        name: float(np.linalg.norm(g - reference) / np.linalg.norm(reference))
        for name, g in grads.items()
    }

    # %% [markdown]
    # ## The two relaxations
    #
    # The forward relaxation $x(t)$ of pattern 0 from $x = 0.5$ to $x^*$, and the
    # backward one: the error signal $z(t)$ under
    # $dz/dt = -z + (\partial F/\partial x)^T z + J$, which settles at the adjoint
    # whose outer product with $x^*$ is the gradient (eq 17).

    # %%
    ts = jnp.linspace(0.0, 12.0, 200)
    xs = nd.trajectory(net, I[0], ts)
    zs = nd.adjoint_trajectory(net, fp.x[0], I[0], T[0], ts)
    fig, (ax_x, ax_z) = plt.subplots(1, 2, figsize=(10, 4))
    labels = [f"unit {i}" + (" (out)" if i >= n - 2 else "") for i in range(n)]
    plot.state_trajectories(
        ax_x,
        ts,
        xs,
        fixed_point=fp.x[0],
        labels=labels,
        title="forward: $dx/dt = -x + g(Wx) + I$ from $x = 0.5$",
    )
    plot.state_trajectories(
        ax_z,
        ts,
        zs,
        title="adjoint: $dz/dt = -z + (\\partial F/\\partial x)^T z + J$",
        ylabel="error signal $z_i(t)$",
    )
    plot.save(fig, out / "relaxation.png")

    np.savez(out / "params.npz", **model_arrays(net))
    np.savez(out / "data.npz", I=np.asarray(I), T=np.asarray(T))
    metrics = {
        "E_total": float(E),
        "converged": bool(np.all(fp.converged)),
        "max_residual": float(jnp.max(fp.residual)),
        "mean_solver_steps": float(jnp.mean(fp.num_steps)),
        "gradient_relative_difference_vs_RecurrentBackprop": disagreement,
        "gradient_seconds": seconds,
    }
    write_json(out / "config.json", {"demo": "first-order", "model": model_config(net)})
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
