"""The classical Runge-Kutta method, as a diffrax solver."""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import numpy as np


class RK4(diffrax.AbstractERK):
    r"""The classical fourth-order Runge-Kutta method, for constant steps.

    Papers that integrate by hand use it (the implicit-layer paper relaxes its
    layers with RK4 "for 30 iterations"); diffrax has no classical RK4. Its error
    estimate here (against Euler) is only first order, so use it with a constant
    step: `nd.ODERelaxation(nd.RK4(), dt0=0.5)`.
    """

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.array([1 / 6 - 1, 1 / 3, 1 / 3, 1 / 6]),
        c=np.array([0.5, 0.5, 1.0]),
    )
    interpolation_cls: ClassVar[Callable] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        del terms
        return 4
