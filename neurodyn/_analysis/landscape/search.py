r"""The search for every fixed and slow point of a network (Sussillo & Barak's
method, for the continuous-time networks $\tau\,dx/dt = -x + F(x)$ of every model).

Fixed points are the zeros of the speed

$$q(x) = \tfrac12\,\|F(x) - x\|^2,$$

a sum of squares whose global minima ($q = 0$) are the fixed points of every
stability (attractors, saddles, repellers) and whose other local minima are *slow
points*, where the flow nearly stops. From many starts, $q$ is minimised by Adam
(optax, a learning rate decaying a hundredfold; only a vector-Jacobian product of
the drive per step), all starts batched with `jax.vmap` in one compiled program,
then polished by Newton's method on $F(x) - x = 0$ (the dense Newton of
[`neurodyn.stability_along`][]; optimistix's Levenberg-Marquardt and Newton found
the same points but took two to three times as long to compile, 15-17 s against 6-7
s per model on a busy 2-core CPU, a cost the tests pay for every model). The results
are deduplicated within a tolerance (`dedup.py`) and each point is classified from the
eigenvalues of its linearisation (`kinds.py`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import ArrayLike, PyTree

from ..._models.base import AbstractNetwork
from ..._solvers.base import SEARCH_STEPS
from ..._validation import check_network
from ..spectra import jacobian
from ..stability import _newton
from .checks import _check_options, _Options, _source
from .dedup import _distinct
from .kinds import _classify, _empty_eig, _sorted_eig
from .results import Landscape
from .starts import _starts


# A local minimum of q counts as a slow point when |grad q| <= this * |F(x) - x|.
SLOW_GRADIENT = 1e-2


def _speed(model, I, x):
    r = model.drive(x, I) - x
    return 0.5 * jnp.sum(r**2)


@eqx.filter_jit
def _minimise(model, I, starts, learning_rate, max_steps, polish_steps):
    """Adam on $q$ from every start (a learning rate decaying a hundredfold), a
    Newton polish, and the linearisation at every end point."""
    schedule = optax.exponential_decay(learning_rate, max_steps, 0.01)
    optimiser = optax.adam(schedule)
    speed = lambda x: _speed(model, I, x)  # noqa: E731

    def one(x0):
        def step(carry, _):
            x, state = carry
            updates, state = optimiser.update(jax.grad(speed)(x), state)
            return (optax.apply_updates(x, updates), state), None

        (x, _), _ = jax.lax.scan(step, (x0, optimiser.init(x0)), None, max_steps)
        polished, _ = _newton(model, I, x, polish_steps)
        q, q_polished = speed(x), speed(polished)
        better = jnp.all(jnp.isfinite(polished)) & (q_polished <= q)
        x = jnp.where(better, polished, x)
        return x, speed(x), jax.grad(speed)(x), jacobian(model, x, I)

    return jax.vmap(one)(starts)


def _landscape(model, I, starts, options: _Options) -> Landscape:
    eps = float(jnp.finfo(starts.dtype).eps)
    tol = eps if options.tol is None else options.tol
    x, q, grad, L = _minimise(
        model,
        I,
        starts,
        options.learning_rate,
        options.max_steps,
        options.polish_steps,
    )
    x, q, grad, L = (np.asarray(a) for a in (x, q, grad, L))
    finite = np.all(np.isfinite(x), axis=-1) & np.isfinite(q)
    # A slow point is a local minimum of q: its gradient (J - 1)^T r has all but
    # vanished next to the residual r = F(x) - x itself.
    settled = np.linalg.norm(grad, axis=-1) <= SLOW_GRADIENT * np.sqrt(2 * q)
    keep = finite & ((q <= tol) | (settled & (q <= options.slow_tol)))
    rows, counts = _distinct(x, q, keep, q > tol, options.dedup_tol)
    rows = np.array(rows, dtype=int)
    values, vectors = _sorted_eig(L[rows]) if rows.size else _empty_eig(x.shape[-1])
    eig_tol = eps**0.5 / model.tau if options.eig_tol is None else options.eig_tol
    kinds, n_unstable = _classify(q[rows], values, tol, eig_tol)
    return Landscape(
        jnp.asarray(x[rows].reshape(-1, x.shape[-1])),
        jnp.asarray(q[rows]),
        jnp.asarray(values),
        jnp.asarray(vectors),
        jnp.asarray(n_unstable, dtype=int),
        jnp.asarray(counts),
        tuple(kinds),
    )


def find_fixed_points(
    model: AbstractNetwork,
    I: ArrayLike | PyTree,
    *,
    starts: ArrayLike,
    tol: float | None = None,
    slow_tol: float = 1e-4,
    dedup_tol: float = 1e-4,
    eig_tol: float | None = None,
    learning_rate: float = 1e-2,
    max_steps: int = SEARCH_STEPS,
    polish_steps: int = 20,
) -> Landscape:
    r"""Every fixed point (and slow point) of $\tau\,dx/dt = -x + F(x)$ reached from
    `starts`, with its speed, spectrum, class and unstable directions.

    Minimises $q(x) = \tfrac12\|F(x) - x\|^2$ from each start by Adam, polishes by
    Newton's method on $F(x) - x = 0$ (kept where it lowers $q$), keeps the end
    points with $q \le$ `tol` (fixed points) or a local minimum with $q \le$
    `slow_tol` (slow points), merges those within `dedup_tol` and classifies each
    from the eigenvalues of $L = (-1 + \partial F/\partial x)/\tau$ (the
    docstrings of this module and of `kinds.py`). Only `model.drive` is used: every
    network works.

    **Arguments:**

    - `model`: any network.
    - `I`: its source, one pattern $(N,)$; or a structured source its `drive`
        accepts, such as `cam.training_source(I, T)` for the master of a
        [`neurodyn.ContentAddressableMemory`][].
    - `starts`: $(S, N)$ start states: given, random (e.g. uniform over the range of
        the activation) or visited states with noise ([`neurodyn.starts_near`][]).
        All $S$ run in one compiled, `vmap`-batched solve.

    **Other arguments:**

    - `tol`: a point is fixed when $q \le$ `tol`; default the machine epsilon of the
        dtype ($\|F(x) - x\| \le \sqrt{2\epsilon}$).
    - `slow_tol`: a local minimum of $q$ above `tol` is reported as a slow point up
        to this speed; larger ones are dropped.
    - `dedup_tol`: end points within this distance (max norm) are one point.
    - `eig_tol`: eigenvalues with $|\mathrm{Re}\,\lambda| \le$ `eig_tol` count as
        zero (non-hyperbolic); default $\sqrt\epsilon/\tau$.
    - `learning_rate`: Adam's initial learning rate (it decays a hundredfold over
        the `max_steps` steps).
    - `max_steps`: Adam steps per start (all of them are taken: a fixed cost).
    - `polish_steps`: Newton steps of the polish.

    **Returns:** a [`neurodyn.Landscape`][].
    """
    check_network(model)
    I = _source(model, I)
    starts = _starts(model, starts)
    options = _check_options(
        tol, slow_tol, dedup_tol, eig_tol, learning_rate, max_steps, polish_steps
    )
    return _landscape(model, I, starts, options)
