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
        "The solver found a fixed point, but an unstable one: the dynamics started "
        "from `x0` would leave it (a Ritz value of the Jacobian there has a positive "
        "real part), towards another attractor or a limit cycle. Relax with "
        "`solver=nd.ODERelaxation()` to follow the dynamics themselves."
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
