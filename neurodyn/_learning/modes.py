r"""How patterns are presented in discrete learning (Pineda, "Learning multiple
associations")."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray


class AbstractPatternMode(eqx.Module):
    """Which patterns' errors drive one weight update, as weights $c_a$ on $E[a]$."""

    @abc.abstractmethod
    def pattern_weights(
        self, key: PRNGKeyArray, num_patterns: int
    ) -> Float[Array, " p"]:
        """The coefficients $c_a$ of the update $\\Delta w \\propto -\\sum_a c_a
        \\nabla E[a]$."""


class Deterministic(AbstractPatternMode):
    r"""Every update follows the summed gradient of all patterns (eq 19):
    $\Delta w = -\eta \sum_a \nabla E[a]$. $E_{\text{total}}$ is then a Lyapunov
    function of the (small-$\eta$) learning dynamics."""

    def pattern_weights(self, key, num_patterns):
        del key
        return jnp.ones(num_patterns)


class Stochastic(AbstractPatternMode):
    r"""Every update follows one pattern drawn uniformly at random (eq 20): a
    stochastic approximation of gradient descent on $\langle E[a] \rangle$."""

    def pattern_weights(self, key, num_patterns):
        return jax.nn.one_hot(jr.randint(key, (), 0, num_patterns), num_patterns)


MODES = {"deterministic": Deterministic(), "stochastic": Stochastic()}


def as_mode(mode: AbstractPatternMode | str) -> AbstractPatternMode:
    """A mode object from itself or its name (`"deterministic"`, `"stochastic"`)."""
    if isinstance(mode, AbstractPatternMode):
        return mode
    if isinstance(mode, str) and mode in MODES:
        return MODES[mode]
    raise ValueError(
        f"Unknown `mode` {mode!r}; expected one of {sorted(MODES)} or an "
        "`nd.AbstractPatternMode`."
    )
