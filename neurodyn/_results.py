"""Outcomes of a relaxation, as an `eqx.Enumeration` whose values are the messages."""

import diffrax


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
    adjoint_not_converged = (
        "The adjoint (backward error) dynamics did not converge to a fixed point, so "
        "the gradient is unreliable. By Almeida's result this means the forward fixed "
        "point is not (numerically) stable. Try smaller weights, a larger `t_max`, or "
        "`method=nd.ImplicitDiff()`."
    )
