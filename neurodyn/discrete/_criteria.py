r"""Criteria $\rho$ of the paper's appendix C, as strategies.

A criterion maps the observed outputs $x_n(t)$, $n < N_0$, the desired values
$\bar o_n(t)$ and the gains $\kappa_{nt} \ge 0$ ($0$ for missing data) to a scalar.
Per-sample criteria are normalised means,
$\rho = \sum_{nt} \kappa_{nt}\,\rho_{nt}(x_n(t)) / \sum_{nt} \kappa_{nt}$.

Reweighted criteria freeze a *reference* residual $\hat e$ (the previous estimate)
and are locally quadratic in the residual: the adjustment works with a least-squares
problem at each step, and the criterion proper is the value at $\hat e = e$.
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validation import as_number


class AbstractCriterion(eqx.Module):
    """$\\rho(x)$: outputs, targets and gains to a scalar."""

    name: eqx.AbstractClassVar[str]

    @abc.abstractmethod
    def reference(
        self, outputs: Float[Array, "*s t k"], targets: Float[Array, "*s t k"]
    ) -> Float[Array, "*s t k"]:
        """What a reweighted criterion freezes at the start of an adjustment step."""

    @abc.abstractmethod
    def __call__(
        self,
        outputs: Float[Array, "*s t k"],
        targets: Float[Array, "*s t k"],
        gains: Float[Array, "*s t k"],
        reference: Float[Array, "*s t k"],
    ) -> Float[Array, ""]:
        """The criterion with the reference held fixed."""

    def value(self, outputs, targets, gains) -> Float[Array, ""]:
        """The criterion proper: the reference taken at the outputs themselves."""
        return self(outputs, targets, gains, self.reference(outputs, targets))


class AbstractSampleCriterion(AbstractCriterion):
    r"""A sum of per-sample costs $\rho_{nt}$, each with an IRLS weight $w$ such that
    $\partial_x \rho_{nt} = w \cdot r$ for the sample's residual $r$."""

    def residual(self, x, target):
        """$r$: the signed distance the cost pulls to zero; the error
        $e = x - \\bar o$ unless a criterion says otherwise."""
        return x - target

    @abc.abstractmethod
    def cost(self, x, target, reference):
        """$\\rho_{nt}$ at one sample (elementwise)."""

    @abc.abstractmethod
    def weights(self, x, target, reference):
        """$w$ with $\\partial_x \\rho_{nt} = w \\cdot r$ (elementwise)."""

    def reference(self, outputs, targets):
        return outputs - targets

    def __call__(self, outputs, targets, gains, reference):
        costs = self.cost(outputs, targets, reference)
        return jnp.sum(gains * costs) / jnp.sum(gains)


class L2(AbstractSampleCriterion):
    r"""Least squares: $\rho_{nt} = \tfrac12 (x - \bar o)^2$, $w = 1$."""

    name: ClassVar[str] = "2"

    def cost(self, x, target, reference):
        del reference
        return 0.5 * (x - target) ** 2

    def weights(self, x, target, reference):
        del target, reference
        return jnp.ones_like(x)


class AbstractReweighted(AbstractSampleCriterion):
    r"""An iteratively reweighted least-squares criterion:
    $\rho_{nt} = \tfrac12\, w(\hat e)\, e^2$ with $e = x - \bar o$ and the weight
    $w$ frozen at the reference error $\hat e$."""

    def cost(self, x, target, reference):
        return 0.5 * (x - target) ** 2 * self.weights(x, target, reference)


class ReweightedL1(AbstractReweighted):
    r"""Reweighted L1 (unbounded robust):
    $\rho_{nt} = \tfrac12\, e^2 / (\nu + |\hat e|)$, $w = 1/(\nu + |\hat e|)$,
    $e = x - \bar o$; at $\hat e = e$ a mollified $|e|/2$."""

    nu: float = eqx.field(default=1e-3, static=True)
    name: ClassVar[str] = "1"

    def __check_init__(self):
        as_number("nu", self.nu)

    def weights(self, x, target, reference):
        del x, target
        return 1.0 / (self.nu + jnp.abs(reference))


class ReweightedL0(AbstractReweighted):
    r"""Reweighted L0 (bounded robust): $\rho_{nt} = \tfrac12\, e^2 / (\nu + \hat e^2)$,
    $w = 1/(\nu + \hat e^2)$; at $\hat e = e$ a mollified count of non-zero errors."""

    nu: float = eqx.field(default=1e-3, static=True)
    name: ClassVar[str] = "0"

    def __check_init__(self):
        as_number("nu", self.nu)

    def weights(self, x, target, reference):
        del x, target
        return 1.0 / (self.nu + reference**2)


class AbsoluteValue(AbstractSampleCriterion):
    r"""Standard L1: $\rho_{nt} = |e|$, $w = 1/|e|$ (infinite at $e = 0$)."""

    name: ClassVar[str] = "a"

    def cost(self, x, target, reference):
        del reference
        return jnp.abs(x - target)

    def weights(self, x, target, reference):
        del reference
        return 1.0 / jnp.abs(x - target)


class Biweight(AbstractSampleCriterion):
    r"""Biweight (bounded, twice differentiable, footnote 20): with $u = e/c$,
    $\rho_{nt} = (u^6 - 3u^4 + 3u^2)\,H(1-|u|) + H(|u|-1)$,
    $w = 6\,(1-u^2)^2 H(1-|u|) / c^2$."""

    threshold: float = eqx.field(default=1.0, static=True)
    name: ClassVar[str] = "b"

    def __check_init__(self):
        as_number("threshold", self.threshold)

    def cost(self, x, target, reference):
        del reference
        u2 = jnp.minimum(((x - target) / self.threshold) ** 2, 1.0)
        return u2**3 - 3 * u2**2 + 3 * u2

    def weights(self, x, target, reference):
        del reference
        u2 = ((x - target) / self.threshold) ** 2
        return jnp.where(u2 < 1.0, 6 * (1 - u2) ** 2 / self.threshold**2, 0.0)


class Boolean(AbstractSampleCriterion):
    r"""Boolean adjustment with margin $\nu$: $\rho_{nt} = \tfrac12\,q\big(\nu -
    \mathrm{sg}(\bar o - \tfrac12)(x - \tfrac12)\big)$, $q(v) = H(v)\,v^2$; zero iff $x$
    is on the side of $1/2$ given by $\bar o$ with margin $\nu$. Residual
    $r = x - \tfrac12 - \mathrm{sg}(\bar o - \tfrac12)\,\nu$, $w = H(v)$."""

    margin: float = eqx.field(default=0.1, static=True)
    name: ClassVar[str] = "boolean"

    def __check_init__(self):
        as_number("margin", self.margin)

    def _slack(self, x, target):
        return self.margin - jnp.sign(target - 0.5) * (x - 0.5)

    def residual(self, x, target):
        return x - 0.5 - jnp.sign(target - 0.5) * self.margin

    def cost(self, x, target, reference):
        del reference
        v = self._slack(x, target)
        return 0.5 * jnp.where(v > 0, v**2, 0.0)

    def weights(self, x, target, reference):
        del reference
        return jnp.where(self._slack(x, target) > 0, 1.0, 0.0)


class ObservableFit(AbstractCriterion):
    r"""Statistical-observable fit (eq 12, appendix E): the weighted L1 distance
    between desired and produced observable averages,
    $\rho = \sum_k |\bar\lambda_k|\,\big|\bar\Omega_k - \frac{1}{T-\tau_k}
    \sum_t \omega_k(t)\big|$, a first-order stand-in for the KL divergence between
    the Gibbs models of desired and produced outputs. The observables are the mean
    $\omega(t) = x_n(t)$ and the products $\omega_\tau(t) = x_n(t)\,x_n(t-\tau)$ for
    each lag in `lags`, per observed channel; $\bar\Omega$ is computed from the targets.
    `multipliers` are the $|\bar\lambda_k|$ (one per observable; ones by default).
    Gains select the samples that enter the averages."""

    lags: tuple[int, ...] = eqx.field(default=(0, 1), static=True)
    multipliers: tuple[float, ...] | None = eqx.field(default=None, static=True)
    name: ClassVar[str] = "observable"

    def __check_init__(self):
        if any(lag < 0 for lag in self.lags):
            raise ValueError(f"`lags` must be >= 0, got {self.lags}.")
        if self.multipliers is not None and len(self.multipliers) != 1 + len(self.lags):
            raise ValueError(
                f"`multipliers` needs one entry per observable (mean + {len(self.lags)}"
                f" lags), got {len(self.multipliers)}."
            )

    def observables(self, x, gains) -> Float[Array, "k c"]:
        """$\\Omega_k$: the gain-weighted time averages of each observable (rows), for
        each observed channel of each sequence (columns)."""
        t_axis = x.ndim - 2
        averages = [jnp.sum(gains * x, axis=t_axis) / jnp.sum(gains, axis=t_axis)]
        for lag in self.lags:
            later = x.take(jnp.arange(lag, x.shape[t_axis]), axis=t_axis)
            earlier = x.take(jnp.arange(x.shape[t_axis] - lag), axis=t_axis)
            g = gains.take(jnp.arange(lag, x.shape[t_axis]), axis=t_axis)
            averages.append(
                jnp.sum(g * later * earlier, axis=t_axis) / jnp.sum(g, axis=t_axis)
            )
        return jnp.stack([a.ravel() for a in averages])

    def reference(self, outputs, targets):
        del targets
        return jnp.zeros_like(outputs)

    def __call__(self, outputs, targets, gains, reference):
        del reference
        lam = jnp.ones(1 + len(self.lags), outputs.dtype)
        if self.multipliers is not None:
            lam = jnp.abs(jnp.asarray(self.multipliers, outputs.dtype))
        distance = jnp.abs(
            self.observables(targets, gains) - self.observables(outputs, gains)
        )
        return jnp.sum(lam[:, None] * distance)
