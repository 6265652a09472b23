"""Outcomes of a relaxation, as an `eqx.Enumeration` whose values are the messages."""

import diffrax
import jax
import jax.numpy as jnp


class RESULTS(diffrax.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    """diffrax's results, plus the ways a relaxation to a fixed point can fail."""

    not_converged = (
        "The dynamics did not converge to a fixed point: the state was still moving "
        "when the relaxation stopped (at `t_max` or after `max_steps` steps). The "
        "network may oscillate (a limit cycle) or relax very slowly. Try smaller "
        "weights, a larger `t_max` or `max_steps`, or another solver (e.g. a stiff "
        "one such as `diffrax.Kvaerno5()`)."
    )
    diverged = (
        "The dynamics did not converge: the state diverged (it became non-finite or "
        "grew without bound). Try smaller weights or a bounded activation such as "
        "`logistic`."
    )
    unstable = (
        "The fixed point is unstable: the relaxation settled on it, but the dynamics "
        "cannot hold it (the stability certificate found an eigenvalue of the "
        "linearisation (-1 + dF/dx)/tau with positive real part there), so any "
        "perturbation grows into an oscillation or moves to another attractor, and a "
        "loss or gradient there describes a state the network never keeps. Try "
        "another start `x0` (a symmetric start can hold the state on an unstable "
        "invariant set), smaller weights, or inspect it with `nd.spectrum`; to find "
        "unstable fixed points on purpose (continuation, stability analysis) pass "
        "`attractors_only=False`."
    )
    adjoint_not_converged = (
        "The adjoint (backward error) dynamics did not converge to a fixed point, so "
        "the gradient is unreliable. By Almeida's result this means the forward fixed "
        "point is not (numerically) stable. Try smaller weights, a larger `t_max`, or "
        "`method=nd.ImplicitDiff()`."
    )


def select(pred, on_true: RESULTS, on_false: RESULTS) -> RESULTS:
    """Elementwise `RESULTS.where` for a batch of results (any predicate shape)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def error_if_any(token, results: RESULTS, failed):
    """`token`, raising the message of the first `failed` entry of a batch of
    `results` at run time if any entry failed."""
    first = jnp.argmax(failed.reshape(-1))
    result = jax.tree.map(lambda v: v.reshape(-1)[first], results)
    return result.error_if(token, jnp.any(failed))
