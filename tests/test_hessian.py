"""`nd.hessian` and `nd.hessian_vector_product` for every model family and every
float array of the model (`wrt=lambda m: m`), against finite differences of the
gradient (float64)."""

import equinox as eqx
import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import neurodyn as nd

from .helpers import TIGHT, random_patterns, relative_error
from .test_cam import random_memory
from .test_higher_order import N, random_higher_order
from .test_layered import patterns, with_recurrence


def higher_order():
    net = random_higher_order(2)
    I, T = random_patterns(n=N, p=3)
    return net, I, T, None


def memory():
    cam, I, T = random_memory()
    return cam, I, T, nd.memory_start(cam, T)


def implicit():
    net = nd.implicit_network(
        3, [4, 2], key=jax.random.key(0), feedback=[(1, 0)], activation="tanh"
    )
    net = with_recurrence(net, 0.4, seed=0)
    I, T = patterns(net)
    return net, I, T, I


def every_float(model):
    return model


def as_matrix(H, params):
    """The pytree of pytrees `H[a][b]` as one symmetric-shaped matrix."""
    sizes = [leaf.size for leaf in jax.tree.leaves(params)]
    blocks = jax.tree.leaves(H)
    k = len(sizes)
    assert len(blocks) == k * k
    return np.block(
        [
            [
                np.asarray(blocks[i * k + j]).reshape(sizes[i], sizes[j])
                for j in range(k)
            ]
            for i in range(k)
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("build", [higher_order, memory, implicit])
def test_hessian_of_every_float_leaf_matches_finite_differences(build):
    model, I, T, x0 = build()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    theta, unravel = ravel_pytree(params)
    H = nd.hessian(
        model, I, T, wrt=every_float, x0=x0, relaxation=nd.Relaxation(**TIGHT)
    )
    H = as_matrix(H, params)
    assert H.shape == (theta.size, theta.size)
    assert np.allclose(H, H.T, atol=1e-10 * np.abs(H).max())

    def gradient(t):
        m = eqx.combine(unravel(t), static)
        _, g = nd.value_and_grad(
            m, I, T, method=nd.ImplicitDiff(), x0=x0, relaxation=nd.Relaxation(**TIGHT)
        )
        return ravel_pytree(eqx.filter(g, eqx.is_inexact_array))[0]

    rng = np.random.default_rng(0)
    eps = 1e-5
    for _ in range(2):
        v = rng.normal(size=theta.size)
        fd = (gradient(theta + eps * v) - gradient(theta - eps * v)) / (2 * eps)
        assert relative_error(H @ v, fd) <= 1e-6
        Hv = nd.hessian_vector_product(
            model,
            I,
            T,
            unravel(v),
            wrt=every_float,
            x0=x0,
            relaxation=nd.Relaxation(**TIGHT),
        )
        assert relative_error(ravel_pytree(Hv)[0], H @ v) <= 1e-10


def test_default_wrt_needs_weights_and_v_the_parameters_structure():
    """A model without `weights` is told to pass `wrt`; `v` must match what `wrt`
    picks."""
    model, I, T, x0 = implicit()
    with pytest.raises(ValueError, match="pass e.g. `wrt=lambda m: m`"):
        nd.hessian(model, I, T, x0=x0)
    with pytest.raises(ValueError, match="`v` must have the structure"):
        nd.hessian_vector_product(model, I, T, np.zeros(3), wrt=every_float, x0=x0)
    with pytest.raises((ValueError, TypeError), match="wrt"):  # jaxtyping in tests
        nd.hessian(model, I, T, wrt="weights", x0=x0)
