"""Relax a recurrent network to its fixed point, take dE/dW, and plot x(t)."""

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import neurodyn as nd


n = 8
W = np.random.default_rng(0).normal(size=(n, n)) / np.sqrt(n)
net = nd.FirstOrderNetwork(
    W, input_units=np.arange(n) < 2, output_units=np.arange(n) >= 6
)
I = jnp.zeros((4, n)).at[:, :2].set(1.0)  # 4 patterns, a source on the input units
T = jnp.full((4, n), 0.9)  # targets (only the output units count)

fp = nd.relax(net, I)  # tau dx/dt = -x + g(Wx) + I, relaxed to x*
print("converged:", fp.converged, "solver steps:", fp.num_steps)
E, grads = nd.value_and_grad(net, I, T, method=nd.RecurrentBackprop())
print(f"E = {E:.4f}, |dE/dW| = {jnp.linalg.norm(grads.weights):.4f}")

ts = jnp.linspace(0.0, 10.0, 200)
plt.plot(ts, nd.trajectory(net, I[0], ts))  # x(t) of pattern 0, one line per unit
plt.xlabel("time $t$"), plt.ylabel("activity $x_i(t)$")
plt.savefig("first_example.png", dpi=100)
