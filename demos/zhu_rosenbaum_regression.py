r"""Demo `zhu-rosenbaum-regression`: learning the fixed points of a linear rate
network (Zhu & Rosenbaum 2024, section 3.1, figures 1-3).

With $f(z) = z$ the fixed point of $\tau\, dr/dt = -r + W r + x$ is
$r = [I - W]^{-1} x$, used here in closed form (a test holds it equal to
`nd.relax`); the cost is eq 3.1, $J(W) = \frac1m \|[I - W]^{-1} X - Y\|_F^2$, with
data from eq 3.4 and its minimum-norm minimiser $W^* = [Y - X] Y^+$ (eq 3.3).
"""

import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import neurodyn as nd
from neurodyn import plot
from neurodyn._runs import write_json


N, M = 100, 50  # units; patterns (m < N: overparameterised)
SIGMA_X, SIGMA_Y, SIGMA_W, C = 0.1, 0.01, 0.5, 2.5
THEORY_BOUNDARY = float(np.sqrt(1 - SIGMA_W**2) / C)  # |t| < 0.346
T_STABLE, T_UNSTABLE = 0.2, 0.5  # start points on the first line
LEARNING_RATES = (0.03, 0.1, 0.3, 1.0, 3.0)
REFERENCE_RATE = 1.0  # the run whose final costs and angles are reported
RULES = ("dW1", "dW2", "dW3")


def regression_data(seed: int = 0, n: int = N, m: int = M) -> dict[str, np.ndarray]:
    r"""Eq 3.4: $X = \sigma_x Z$, $\hat W = \sigma_w Z / \sqrt N$,
    $Y = [I - \hat W]^{-1} X + \sigma_y Z$; and $W^* = [Y - X] Y^+$ (eq 3.3)."""
    rng = np.random.default_rng(seed)
    X = SIGMA_X * rng.normal(size=(n, m))
    W_hat = SIGMA_W * rng.normal(size=(n, n)) / np.sqrt(n)
    Y = np.linalg.solve(np.eye(n) - W_hat, X) + SIGMA_Y * rng.normal(size=(n, m))
    W_star = (Y - X) @ np.linalg.pinv(Y)
    return {"X": X, "Y": Y, "W_hat": W_hat, "W_star": W_star}


def cost(W, X, Y):
    r"""Eq 3.1, $J(W) = \frac1m \|[I - W]^{-1} X - Y\|_F^2$."""
    eye = jnp.eye(W.shape[0], dtype=W.dtype)
    return jnp.sum((jnp.linalg.solve(eye - W, X) - Y) ** 2) / X.shape[1]


def fixed_points(W, X):
    r"""$R = [I - W]^{-1} X$, the fixed points of the linear network (closed form)."""
    return jnp.linalg.solve(jnp.eye(W.shape[0], dtype=W.dtype) - W, X)


def linear_dw3(W, X, Y):
    r"""$D_3$ of the linear model without any inverse (eq 3.11),
    $\Delta W_3 = -\eta\, \frac2m \big(X X^T [I - W] - [I - W] Y X^T [I - W]\big)$:
    `nd.DW3()` with $[I - W] r^a = x^a$ substituted, so it needs no fixed point and
    stays defined where $I - W$ is singular."""
    eye = jnp.eye(W.shape[0], dtype=W.dtype)
    B = eye - W
    return 2 / X.shape[1] * (X @ (X.T @ B) - B @ Y @ (X.T @ B))


def directions(W, X, Y, eta, names=tuple(RULES)):
    r"""$J(W)$ and $D$ of the rules `names` at $W$ (each $\Delta W = -\eta D$), from
    the fixed points $R$ and $\nabla_r L = 2(r - y)$; $\Delta W_1$'s Euclidean
    gradient by reverse-mode autodiff through $R(W)$; $\Delta W_3$ by eq 3.11
    (`linear_dw3`, equal to `nd.DW3()` wherever $I - W$ is invertible)."""
    model = nd.RateNetwork(W, activation=nd.identity)
    R, vjp = jax.vjp(lambda W_: fixed_points(W_, X), W)
    m = X.shape[1]
    weights = jnp.full(m, 1 / m, dtype=W.dtype)
    cotangents = 2 * (R - Y).T

    def gradient():
        return vjp(cotangents.T / m)[0]

    rules = {"dW1": nd.DW1(), "dW2": nd.DW2(eta, pooled=True)}
    J = jnp.sum((R - Y) ** 2) / m
    return J, {
        name: linear_dw3(W, X, Y)
        if name == "dW3"
        else rules[name].direction(model, R.T, X.T, cotangents, weights, gradient)
        for name in names
    }


def angle(a, b):
    r"""$\theta = \cos^{-1}\big(a \cdot b / \sqrt{(a \cdot a)(b \cdot b)}\big)$ in
    degrees (Frobenius products)."""
    c = jnp.sum(a * b) / jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))
    return jnp.degrees(jnp.arccos(jnp.clip(c, -1, 1)))


@eqx.filter_jit
def learn(rule: str, etas, W0, X, Y, steps: int, with_angles: bool):
    """`steps` updates $W \\leftarrow W - \\eta D_{\\text{rule}}$ for each learning
    rate in `etas` (vmapped): the final $W$, the costs $(K, S+1)$ and, if
    `with_angles`, the angles $\\theta_{12}, \\theta_{13}, \\theta_{23}$ before each
    update $(K, S, 3)$ (all three rules are then evaluated at every step)."""

    def one(eta):
        def step(W, _):
            names = RULES if with_angles else (rule,)
            J, D = directions(W, X, Y, eta, names)
            if with_angles:
                angles = jnp.stack(
                    [angle(D["dW1"], D["dW2"]), angle(D["dW1"], D["dW3"])]
                    + [angle(D["dW2"], D["dW3"])]
                )
            else:
                angles = jnp.zeros(3, W.dtype)
            return W - eta * D[rule], (J, angles)

        W, (costs, angles) = jax.lax.scan(step, W0, None, length=steps)
        return W, jnp.concatenate([costs, cost(W, X, Y)[None]]), angles

    return jax.vmap(one)(etas)


@jax.jit
def line_landscape(W_star, lines, ts, X, Y):
    r"""$J(W^* + c\,t Z_k/\sqrt N)$ for every line $Z_k$ and every $t$ (eq 3.5)."""
    scale = C / np.sqrt(W_star.shape[0])
    return jax.vmap(
        lambda Z: jax.lax.map(lambda t: cost(W_star + scale * t * Z, X, Y), ts)
    )(lines)


@jax.jit
def plane_landscape(W_star, plane, ts, X, Y):
    r"""$J(W^* + c\,(t_1 Z_1 + t_2 Z_2)/\sqrt N)$ on the grid `ts` x `ts` (eq 3.6),
    indexed `[t1, t2]`."""
    scale = C / np.sqrt(W_star.shape[0])

    def row(t1):
        return jax.vmap(
            lambda t2: cost(W_star + scale * (t1 * plane[0] + t2 * plane[1]), X, Y)
        )(ts)

    return jax.lax.map(row, ts)


def spectral_radius(W) -> float:
    """$\\rho(W) = \\max |\\lambda(W)|$ (NaN for a non-finite $W$)."""
    W = np.asarray(W, dtype=float)
    if not np.all(np.isfinite(W)):
        return float("nan")
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def crossing(W_star, Z, sign: float) -> float:
    r"""The smallest $t > 0$ with $\rho(W^* + \mathrm{sign}\, c\, t Z / \sqrt N) = 1$,
    by bisection after a coarse scan."""
    n = W_star.shape[0]

    def rho(t):
        return spectral_radius(W_star + sign * C * t * Z / np.sqrt(n)) - 1

    grid = np.linspace(0, 1, 21)
    values = [rho(t) for t in grid]
    k = next(i for i, v in enumerate(values) if v > 0)
    lo, hi = grid[k - 1], grid[k]
    for _ in range(16):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rho(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def run(out: pathlib.Path, *, small: bool = False) -> dict:
    # One BLAS thread: with JAX's and other processes' threads competing for a few
    # cores, multithreaded OpenBLAS (used by NumPy and by JAX's CPU LAPACK calls)
    # makes each 100 x 100 solve or eigendecomposition 30-60 times slower.
    with threadpool_limits(1):
        return _run(out, small=small)


def _run(out: pathlib.Path, *, small: bool) -> dict:
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    data = regression_data()
    X, Y, W_star = (jnp.asarray(data[k], dtype=dtype) for k in ("X", "Y", "W_star"))
    rng = np.random.default_rng(1)
    lines = rng.normal(size=(5, N, N))
    plane = rng.normal(size=(2, N, N))
    scale = C / np.sqrt(N)

    # Figure 1: the landscape along lines and a plane through W*.
    ts = np.linspace(-1, 1, 41 if small else 161)
    line_costs = np.asarray(
        line_landscape(W_star, jnp.asarray(lines, dtype), jnp.asarray(ts, dtype), X, Y)
    )
    rho_ts = np.linspace(-1, 1, 11 if small else 41)
    line_radii = np.array(
        [
            [spectral_radius(data["W_star"] + scale * t * Z) for t in rho_ts]
            for Z in lines
        ]
    )
    crossings = np.array(
        [crossing(data["W_star"], Z, s) for Z in lines for s in (1.0, -1.0)]
    )
    measured_boundary = float(np.mean(crossings))
    grid = np.linspace(-1, 1, 25 if small else 61)
    plane_costs = np.asarray(
        plane_landscape(
            W_star, jnp.asarray(plane, dtype), jnp.asarray(grid, dtype), X, Y
        )
    )

    # Figure 2: learning curves of the three rules; figure 3: angles.
    starts = {
        "stable": data["W_star"] + scale * T_STABLE * lines[0],
        "unstable": data["W_star"] + scale * T_UNSTABLE * lines[0],
    }
    steps = 150 if small else 1000
    curves, finals, angles = {}, {}, {}
    others = [e for e in LEARNING_RATES if e != REFERENCE_RATE]
    for start, W0 in starts.items():
        W0 = jnp.asarray(W0, dtype)
        for rule in RULES:
            _, costs, _ = learn(
                rule, jnp.asarray(others, dtype), W0, X, Y, steps, False
            )
            for k, eta in enumerate(others):
                curves[start, rule, eta] = np.asarray(costs[k])
            W, costs, theta = learn(
                rule, jnp.asarray([REFERENCE_RATE], dtype), W0, X, Y, steps, True
            )
            curves[start, rule, REFERENCE_RATE] = np.asarray(costs[0])
            finals[start, rule] = np.asarray(W[0])
            angles[start, rule] = np.asarray(theta[0])

    _landscape_figure(
        out, ts, line_costs, rho_ts, line_radii, grid, plane_costs, measured_boundary
    )
    _learning_figure(out, curves)
    _angles_figure(out, angles)

    np.savez(out / "data.npz", X=data["X"], Y=data["Y"])
    np.savez(out / "params.npz", W=finals["stable", "dW2"])
    np.savez(
        out / "final_weights.npz",
        **{f"{rule}_{start}": W for (start, rule), W in finals.items()},
        W_star=data["W_star"],
        W_hat=data["W_hat"],
        **{f"W0_{start}": W0 for start, W0 in starts.items()},
    )
    np.savez(
        out / "history.npz",
        learning_rates=np.asarray(LEARNING_RATES),
        **{
            f"cost_{rule}_{start}": np.stack(
                [curves[start, rule, e] for e in LEARNING_RATES]
            )
            for start in starts
            for rule in RULES
        },
        **{f"angles_{rule}_{start}": a for (start, rule), a in angles.items()},
        line_t=ts,
        line_costs=line_costs,
        plane_t=grid,
        plane_costs=plane_costs,
        boundary_crossings=crossings,
    )
    write_json(
        out / "config.json",
        {
            "demo": "zhu-rosenbaum-regression",
            "N": N,
            "m": M,
            "sigma_x": SIGMA_X,
            "sigma_y": SIGMA_Y,
            "sigma_w": SIGMA_W,
            "c": C,
            "t_stable_start": T_STABLE,
            "t_unstable_start": T_UNSTABLE,
            "learning_rates": LEARNING_RATES,
            "reference_learning_rate": REFERENCE_RATE,
            "steps": steps,
            "fixed_point": "closed form r = (I - W)^-1 x (linear f)",
        },
    )

    def best(start, rule):
        return float(np.nanmin([curves[start, rule, e][-1] for e in LEARNING_RATES]))

    metrics = {
        "final_cost": {
            r: float(curves["stable", r, REFERENCE_RATE][-1]) for r in RULES
        },
        "final_cost_unstable_start": {
            r: float(curves["unstable", r, REFERENCE_RATE][-1]) for r in RULES
        },
        "reference_learning_rate": REFERENCE_RATE,
        "best_final_cost": {r: best("stable", r) for r in RULES},
        "best_final_cost_unstable_start": {r: best("unstable", r) for r in RULES},
        "initial_cost": {s: float(curves[s, "dW1", REFERENCE_RATE][0]) for s in starts},
        "initial_spectral_radius": {s: spectral_radius(W) for s, W in starts.items()},
        "final_spectral_radius_unstable_start": {
            r: spectral_radius(finals["unstable", r]) for r in RULES
        },
        "measured_boundary": measured_boundary,
        "theory_boundary": THEORY_BOUNDARY,
        "spectral_radius_W_star": spectral_radius(data["W_star"]),
        "mean_angle_stable_start": {
            r: dict(zip(("theta12", "theta13", "theta23"), np.nanmean(a, axis=0)))
            for (s, r), a in angles.items()
            if s == "stable"
        },
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _landscape_figure(out, ts, line_costs, rho_ts, radii, grid, plane, boundary):
    cap = 1000.0
    fig, (ax_line, ax_rho, ax_plane) = plt.subplots(1, 3, figsize=(16, 4.6))
    for k, costs in enumerate(line_costs):
        ax_line.plot(ts, np.minimum(costs, cap), lw=1, label=f"line {k + 1}")
    for ax in (ax_line, ax_rho):
        for sign in (1, -1):
            ax.axvline(sign * THEORY_BOUNDARY, color="tab:blue", ls="--", lw=1)
            ax.axvline(sign * boundary, color="tab:red", ls=":", lw=1.2)
    ax_line.plot(
        [T_STABLE],
        [line_costs[0][np.argmin(np.abs(ts - T_STABLE))]],
        "o",
        color="tab:blue",
        ms=8,
        label="stable start",
    )
    ax_line.plot(
        [T_UNSTABLE],
        [min(cap, line_costs[0][np.argmin(np.abs(ts - T_UNSTABLE))])],
        "o",
        color="black",
        ms=8,
        label="unstable start",
    )
    ax_line.set_yscale("log")
    ax_line.set_xlabel("$t$ in $W(t) = W^* + c\\,t Z/\\sqrt{N}$")
    ax_line.set_ylabel("$J(W(t))$ (cut at 1000)")
    ax_line.set_title("A  cost along five random lines (eq 3.5)")
    ax_line.legend(fontsize="small", ncol=2)
    for k, r in enumerate(radii):
        ax_rho.plot(rho_ts, r, lw=1)
    ax_rho.axhline(1, color="grey", lw=0.8)
    ax_rho.plot(
        [], [], color="tab:blue", ls="--", label=f"theory $|t|$ = {THEORY_BOUNDARY:.3f}"
    )
    ax_rho.plot(
        [], [], color="tab:red", ls=":", label=f"measured $|t|$ = {boundary:.3f}"
    )
    ax_rho.set_xlabel("$t$")
    ax_rho.set_ylabel("spectral radius $\\rho(W(t))$")
    ax_rho.set_title("B  stability boundary $\\rho = 1$")
    ax_rho.legend(fontsize="small")
    image = ax_plane.pcolormesh(
        grid,
        grid,
        np.minimum(plane, cap).T,
        cmap="hot",
        shading="auto",
        norm=plt.matplotlib.colors.LogNorm(vmin=max(np.nanmin(plane), 1e-3), vmax=cap),
    )
    fig.colorbar(image, ax=ax_plane, label="$J$ (cut at 1000)")
    circle = np.linspace(0, 2 * np.pi, 200)
    ax_plane.plot(
        THEORY_BOUNDARY * np.cos(circle),
        THEORY_BOUNDARY * np.sin(circle),
        color="tab:blue",
        ls="--",
        lw=1.5,
    )
    ax_plane.set_aspect("equal")
    ax_plane.set_xlabel("$t_1$")
    ax_plane.set_ylabel("$t_2$")
    ax_plane.set_title("C  cost on a random plane (eq 3.6)")
    plot.save(fig, out / "landscape.png")


def _learning_figure(out, curves):
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), sharey="row")
    for row, start in zip(axes, ("stable", "unstable")):
        for ax, rule in zip(row, RULES):
            plot.learning_curves(
                ax,
                {f"$\\eta$ = {e:g}": curves[start, rule, e] for e in LEARNING_RATES},
                xlabel="iteration",
                ylabel="$J(W)$",
                title=f"$\\Delta W_{rule[-1]}$, {start} start",
            )
            ax.legend(fontsize="small", loc="lower left")
    plot.save(fig, out / "learning_curves.png")


def _angles_figure(out, angles):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    labels = {0: "$\\theta_{12}$", 1: "$\\theta_{13}$", 2: "$\\theta_{23}$"}
    for ax, start in zip(axes, ("stable", "unstable")):
        for rule, color in zip(RULES, ("tab:blue", "tab:orange", "tab:green")):
            a = angles[start, rule]
            for k, ls in ((0, "-"), (2, "--")):
                ax.plot(
                    a[:, k],
                    color=color,
                    ls=ls,
                    label=f"{labels[k]}, learning by $\\Delta W_{rule[-1]}$",
                )
        ax.axhline(90, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 100)
        ax.set_xlabel("iteration")
        ax.set_ylabel("angle between updates (degrees)")
        ax.set_title(f"{start} start, $\\eta$ = {REFERENCE_RATE:g}")
        ax.legend(fontsize="small")
    plot.save(fig, out / "angles.png")


if __name__ == "__main__":
    from neurodyn.cli import demo_script

    demo_script(run, __file__)
