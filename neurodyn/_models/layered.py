r"""Implicit recurrent layers for stationary inputs, composed with feedback into one
network whose drive has block structure."""

import warnings

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from .._activations import Activation, logistic
from .._validation import (
    as_activation,
    as_count,
    as_float_array,
    as_number,
    as_patterns,
    as_time_constant,
    check_finite,
)
from .base import AbstractNetwork


def _renamed_keyword(
    function: str, old: str, new: str, value: ArrayLike | None, deprecated: dict
) -> ArrayLike:
    """The argument `new`, or, with a `DeprecationWarning`, the one given under its
    old name `old` (the only keyword `deprecated` may hold)."""
    unknown = [k for k in deprecated if k != old]
    if unknown:
        raise TypeError(
            f"{function}() got an unexpected keyword argument {unknown[0]!r}."
        )
    if old not in deprecated:
        if value is None:
            raise TypeError(f"{function}() missing required argument: `{new}`.")
        return value
    if value is not None:
        raise TypeError(f"{function}() got `{new}` and its old name `{old}`; give one.")
    warnings.warn(
        f"`{function}({old}=...)` is deprecated; write `{function}({new}=...)`.",
        DeprecationWarning,
        stacklevel=3,
    )
    return deprecated[old]


def _matrix(name: str, value: ArrayLike, shape: tuple[int, ...]) -> Array:
    """A finite float array of exactly `shape`."""
    arr = as_float_array(name, value)
    if arr.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got {arr.shape}.")
    check_finite(name, arr)
    return arr


class ImplicitLayer(eqx.Module):
    r"""One implicit recurrent layer: its activity $Y$ solves

    $$Y = f(W Y + Q X + b),$$

    with lateral weights $W$ (within the layer), input weights $Q$ (from the stationary
    input or the layer below) and bias $b$ (the paper's $T$; in neurodyn `T` names
    targets). A layer does not relax on its own: it is a block of an
    [`neurodyn.ImplicitRecurrentNetwork`][], which owns $f$ and the feedback between
    layers.

    `lateral` masks the lateral connections that exist; a feed-forward layer
    (`W=None`) has none, so $Y = f(QX + b)$ and its `W` is a structural zero that
    never gets a gradient.
    """

    W: Float[Array, "m m"]
    Q: Float[Array, "m k"]
    bias: Float[Array, " m"]
    lateral: Bool[Array, "m m"]

    def __init__(
        self,
        Q: ArrayLike,
        bias: ArrayLike | None = None,
        W: ArrayLike | None = None,
        *,
        lateral: ArrayLike | None = None,
        **deprecated: ArrayLike,
    ):
        bias = _renamed_keyword("ImplicitLayer", "T", "bias", bias, deprecated)
        Q = as_float_array("Q", Q)
        if Q.ndim != 2:
            raise ValueError(
                f"`Q` must be a matrix (layer size, input size), got shape {Q.shape}."
            )
        check_finite("Q", Q)
        m = Q.shape[0]
        self.Q = Q
        self.bias = _matrix("bias", bias, (m,))
        if W is None:
            if lateral is not None:
                raise ValueError("`lateral` needs lateral weights `W`.")
            self.W = jnp.zeros((m, m), dtype=Q.dtype)
            self.lateral = jnp.zeros((m, m), dtype=bool)
        else:
            self.W = _matrix("W", W, (m, m))
            mask = jnp.ones((m, m), dtype=bool) if lateral is None else lateral
            mask = jnp.asarray(mask)
            if mask.dtype != jnp.bool_ or mask.shape != (m, m):
                raise ValueError(
                    f"`lateral` must be a boolean mask of shape ({m}, {m}), got "
                    f"dtype {mask.dtype} and shape {mask.shape}."
                )
            self.lateral = mask

    @property
    def size(self) -> int:
        """The number of units $m$."""
        return self.bias.shape[0]

    @property
    def n_inputs(self) -> int:
        """The size $k$ of what $Q$ reads (the input or the layer below)."""
        return self.Q.shape[1]

    @property
    def effective_weights(self) -> Float[Array, "m m"]:
        """$W$ with the entries outside `lateral` set to (structural) zero."""
        return jnp.where(self.lateral, self.W, 0)

    @property
    def T(self) -> Float[Array, " m"]:
        """Deprecated name of `bias`."""
        warnings.warn(
            "`ImplicitLayer.T` is deprecated; write `ImplicitLayer.bias`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.bias

    @property
    def effective_W(self) -> Float[Array, "m m"]:
        """Deprecated name of `effective_weights`."""
        warnings.warn(
            "`ImplicitLayer.effective_W` is deprecated; write "
            "`ImplicitLayer.effective_weights`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.effective_weights

    def net_input(
        self, Y: Float[Array, " m"], X: Float[Array, " k"]
    ) -> Float[Array, " m"]:
        r"""$\tilde X = W Y + Q X + b$, the argument of $f$ (without feedback)."""
        return self.effective_weights @ Y + self.Q @ X + self.bias


ImplicitLayer.__init__.__doc__ = """**Arguments:**

- `Q`: input weights, shape $(m, k)$: $m$ units reading $k$ values.
- `bias`: the biases $b$, shape $(m,)$ (the old keyword `T=` still works,
    deprecated).
- `W`: lateral weights $(m, m)$, $W_{ij}$ from unit $j$ to unit $i$ of the layer
    (self-connections included). `None` makes a feed-forward layer.
- `lateral`: boolean mask $(m, m)$ of the lateral connections that exist; default
    all of them.
"""


class ImplicitRecurrentNetwork(AbstractNetwork):
    r"""Implicit recurrent layers with feedback, as one network (Földiák's implicit
    layers trained by backpropagation; the two-layer network of the paper's
    eqs 7, 8).

    Layer $l = 0, \dots, L-1$ (0 reads the stationary input $X$, $L-1$ is the output
    layer) has activity $Y^l$ solving

    $$Y^l = f\Big(W^l Y^l + Q^l Y^{l-1} + \sum_{j > l} R^{jl}\, Y^j + b^l\Big),
      \qquad Y^{-1} = X,$$

    with feedback $R^{jl}$ from a later layer $j$ to an earlier one $l$. The
    activities are the steady state of

    $$\tau\, \frac{dY^l}{dt} = -Y^l + f(W^l Y^l + Q^l Y^{l-1}
      + \textstyle\sum_{j>l} R^{jl} Y^j + b^l),$$

    which is neurodyn's $\tau\,dx/dt = -x + F(x; \theta, I)$ with block-structured
    $F$. The state is $x = (x_{\mathrm{in}}, Y^0, \dots, Y^{L-1})$: the first
    `n_inputs` units are input units whose drive is the source, $F_{\mathrm{in}} =
    I_{\mathrm{in}} = X$ (they settle to a copy of $X$; the layers read $X$ from the
    source directly). Build the source with `source(X)`, the targets with
    `targets(Y)`, and read the outputs with `outputs(x)`.

    Every gradient method applies unchanged. For one layer the adjoint fixed point
    gives the paper's exact derivative (eqs 4-6)

    $$\frac{\partial Y}{\partial W} = (1 - f' \odot W)^{-1} f' \odot \delta_Y,$$

    i.e. $\partial E/\partial W = g\, Y^T$ with $g = f'\odot(1 - W^T
    \mathrm{diag}(f'))^{-1}\,\partial E/\partial Y$; with feedback, the coupled
    solution of its appendix B. [`neurodyn.SemiGradient`][] truncates it.

    ??? cite "References"

        ```bibtex
        @article{foldiak1990forming,
          title={Forming sparse representations by local anti-{H}ebbian learning},
          author={F{\"o}ldi{\'a}k, Peter},
          journal={Biological Cybernetics},
          volume={64},
          number={2},
          pages={165--170},
          year={1990}
        }
        ```
    """

    layers: tuple[ImplicitLayer, ...]
    feedback: tuple[Float[Array, "_ _"], ...]
    feedback_pairs: tuple[tuple[int, int], ...] = eqx.field(static=True)
    activation: Activation
    output_units: Bool[Array, " n"]
    output_indices: tuple[int, ...] = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)
    tau: float = eqx.field(static=True)

    def __init__(
        self,
        layers: list[ImplicitLayer] | tuple[ImplicitLayer, ...],
        feedback: dict[tuple[int, int], ArrayLike] | None = None,
        *,
        activation: Activation | str = logistic,
        output_units: ArrayLike | None = None,
        tau: float = 1.0,
    ):
        layers = tuple(layers)
        if not layers or not all(isinstance(ly, ImplicitLayer) for ly in layers):
            raise ValueError(
                "`layers` must be a non-empty sequence of `nd.ImplicitLayer`, got "
                f"{layers!r}."
            )
        for l in range(1, len(layers)):
            if layers[l].n_inputs != layers[l - 1].size:
                raise ValueError(
                    f"Layer {l} reads {layers[l].n_inputs} values (`Q` has shape "
                    f"{layers[l].Q.shape}) but layer {l - 1} has {layers[l - 1].size} "
                    "units."
                )
        pairs, matrices = [], []
        for key, R in sorted((feedback or {}).items()):
            source_layer, target_layer = key
            if not 0 <= target_layer < source_layer < len(layers):
                raise ValueError(
                    f"Feedback {key} must run from a later layer to an earlier one, "
                    f"(j, i) with 0 <= i < j < {len(layers)}."
                )
            shape = (layers[target_layer].size, layers[source_layer].size)
            matrices.append(_matrix(f"feedback[{key}]", R, shape))
            pairs.append((source_layer, target_layer))
        self.layers = layers
        self.feedback = tuple(matrices)
        self.feedback_pairs = tuple(pairs)
        self.activation = as_activation("activation", activation)
        self.n_inputs = layers[0].n_inputs
        self.tau = as_time_constant(tau)
        last = layers[-1].size
        if output_units is None:
            output_units = np.ones(last, dtype=bool)
        output_units = np.asarray(output_units)
        if output_units.dtype != np.bool_ or output_units.shape != (last,):
            raise ValueError(
                f"`output_units` must be a boolean mask of shape ({last},) over the "
                f"last layer, got dtype {output_units.dtype} and shape "
                f"{output_units.shape}."
            )
        if not output_units.any():
            raise ValueError("`output_units` must select at least one unit.")
        before = self.n_inputs + sum(ly.size for ly in layers[:-1])
        self.output_units = jnp.asarray(
            np.concatenate([np.zeros(before, dtype=bool), output_units])
        )
        self.output_indices = tuple(
            int(i) + before for i in np.flatnonzero(output_units)
        )

    # Layout of the state x = (x_in, Y^0, ..., Y^{L-1}).

    @property
    def offsets(self) -> tuple[int, ...]:
        """Where each block starts in the state: input, then every layer."""
        sizes = [self.n_inputs, *(ly.size for ly in self.layers)]
        return tuple(int(s) for s in np.cumsum([0, *sizes[:-1]]))

    @property
    def input_units(self) -> Bool[Array, " n"]:
        """The units that carry the input copy $x_{\\mathrm{in}}$."""
        return jnp.arange(self.n_units) < self.n_inputs

    def layer_activities(self, x: Float[Array, "*p n"]) -> list[Array]:
        """The blocks $Y^0, \\dots, Y^{L-1}$ of a state (or a batch of states)."""
        return [
            x[..., start : start + ly.size]
            for start, ly in zip(self.offsets[1:], self.layers)
        ]

    def outputs(self, x: Float[Array, "*p n"]) -> Float[Array, "*p o"]:
        """The output units' activities."""
        return x[..., np.asarray(self.output_indices)]

    def source(self, X: ArrayLike) -> Float[Array, "*p n"]:
        """The source $I$ for inputs $X$ of shape $(k,)$ or $(P, k)$: $X$ on the input
        units, zero elsewhere. Also a good start state: layers at 0, as in the
        paper."""
        X = as_patterns("X", X, self.n_inputs, of="inputs")
        pad = [(0, 0)] * (X.ndim - 1) + [(0, self.n_units - self.n_inputs)]
        return jnp.pad(X, pad)

    def targets(self, Y: ArrayLike) -> Float[Array, "*p n"]:
        """The targets $T$ for output values $Y$ of shape $(o,)$ or $(P, o)$, one per
        output unit; zero (and ignored) elsewhere."""
        Y = as_patterns("Y", Y, len(self.output_indices), of="output units")
        full = jnp.zeros((*Y.shape[:-1], self.n_units), dtype=Y.dtype)
        return full.at[..., np.asarray(self.output_indices)].set(Y)

    @property
    def feedforward_connections(self) -> Bool[Array, "n n"]:
        r"""The entries of $\partial F/\partial x$ that are feed-forward: $Q^l$ from
        layer $l-1$ to layer $l$. Lateral ($W$) and feedback ($R$) entries are not.
        Pass it to [`neurodyn.SemiGradient`][] to backpropagate through the layers
        while truncating the recurrence."""
        mask = np.zeros((self.n_units, self.n_units), dtype=bool)
        starts = self.offsets
        for l in range(1, len(self.layers)):
            rows = slice(starts[l + 1], starts[l + 1] + self.layers[l].size)
            mask[rows, starts[l] : starts[l] + self.layers[l - 1].size] = True
        return jnp.asarray(mask)

    @property
    def n_parameters(self) -> int:
        """The number of free parameters: $Q$, $b$, $R$ and the unmasked $W$."""
        count = sum(
            ly.Q.size + ly.bias.size + int(np.sum(np.asarray(ly.lateral)))
            for ly in self.layers
        )
        return int(count + sum(R.size for R in self.feedback))

    def net_inputs(self, x: Float[Array, " n"], I: Float[Array, " n"]) -> list[Array]:
        r"""$\tilde X^l = W^l Y^l + Q^l Y^{l-1} + \sum_{j>l} R^{jl} Y^j + b^l$ for
        every layer."""
        X = I[: self.n_inputs]
        Y = self.layer_activities(x)
        u = [
            ly.net_input(Y[l], X if l == 0 else Y[l - 1])
            for l, ly in enumerate(self.layers)
        ]
        for (j, i), R in zip(self.feedback_pairs, self.feedback):
            u[i] = u[i] + R @ Y[j]
        return u

    def training_source(
        self, I: Float[Array, " n"], T: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """The source `I` itself: the network learns under its free dynamics."""
        del T
        return I

    def drive(self, x: Float[Array, " n"], I: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$F(x) = \big(X,\ f(\tilde X^0), \dots, f(\tilde X^{L-1})\big)$ with $X$
        the input block of the source."""
        u = self.net_inputs(x, I)
        return jnp.concatenate([I[: self.n_inputs], *map(self.activation, u)])


ImplicitRecurrentNetwork.__init__.__doc__ = """**Arguments:**

- `layers`: the [`neurodyn.ImplicitLayer`][]s from input to output; layer $l$'s `Q`
    must read as many values as layer $l-1$ has units (layer 0: the input size).
- `feedback`: maps `(j, i)` with $j > i$ to the feedback weights $R^{ji}$, shape
    (size of layer $i$, size of layer $j$). Default none.

**Other arguments:**

- `activation`: $f$, shared by every layer; default [`neurodyn.logistic`][] (the
    paper's sigmoid), or e.g. `"tanh"`.
- `output_units`: boolean mask over the last layer of the units that carry targets;
    default all of them.
- `tau`: the time constant $\\tau > 0$.
"""


def implicit_network(
    n_inputs: int,
    sizes: list[int] | tuple[int, ...],
    *,
    key: PRNGKeyArray,
    lateral: bool = True,
    feedback: list[tuple[int, int]] | tuple[tuple[int, int], ...] = (),
    activation: Activation | str = logistic,
    output_units: ArrayLike | None = None,
    scale: float = 0.5,
) -> ImplicitRecurrentNetwork:
    r"""An [`neurodyn.ImplicitRecurrentNetwork`][] initialised as in the paper:
    $Q$ and $b$ uniform in $[-\mathrm{scale}, \mathrm{scale})$, every recurrent
    weight ($W$ and $R$) zero.

    **Arguments:**

    - `n_inputs`: the size of the stationary input $X$.
    - `sizes`: the number of units of each layer, input side first.
    - `key`: a JAX random key.
    - `lateral`: give every layer lateral weights $W$ (False: feed-forward layers).
    - `feedback`: the pairs `(j, i)`, $j > i$, that get feedback weights $R^{ji}$.
    - `activation`, `output_units`: as for the network.
    - `scale`: half-width of the uniform initialisation (the paper's 0.5).
    """
    n_inputs = as_count("n_inputs", n_inputs)
    scale = as_number("scale", scale)
    sizes = [as_count("sizes", s) for s in sizes]
    if not sizes:
        raise ValueError(
            f"`n_inputs` and every layer size must be positive, got {n_inputs} and "
            f"{sizes}."
        )
    layers = []
    for size, reads, k in zip(
        sizes, [n_inputs, *sizes[:-1]], jr.split(key, len(sizes))
    ):
        kq, kt = jr.split(k)
        layers.append(
            ImplicitLayer(
                jr.uniform(kq, (size, reads), minval=-scale, maxval=scale),
                jr.uniform(kt, (size,), minval=-scale, maxval=scale),
                jnp.zeros((size, size)) if lateral else None,
            )
        )
    return ImplicitRecurrentNetwork(
        layers,
        {(j, i): jnp.zeros((sizes[i], sizes[j])) for j, i in feedback},
        activation=activation,
        output_units=output_units,
    )
