"""Property tests over random sizes, masks and batch shapes."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import neurodyn as nd

from .helpers import TIGHT, relative_error


RELAX = dict(relaxation=nd.Relaxation(**TIGHT))


@st.composite
def problems(draw):
    n = draw(st.integers(2, 5))
    batch = draw(st.sampled_from([(), (1,), (3,)]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    output_units = rng.random(n) < 0.5
    output_units[rng.integers(n)] = True
    cls = draw(st.sampled_from([nd.FirstOrderNetwork, nd.RateNetwork]))
    net = cls(
        0.9 * rng.normal(size=(n, n)) / np.sqrt(n),
        activation=draw(st.sampled_from([nd.logistic, nd.tanh])),
        input_units=rng.random(n) < 0.7,
        output_units=output_units,
        connectivity=rng.random((n, n)) < 0.6,
    )
    I = jnp.asarray(rng.uniform(-1, 1, size=(*batch, n)))
    T = jnp.asarray(rng.uniform(0, 1, size=(*batch, n)))
    return net, I, T


@pytest.mark.slow
@settings(max_examples=20, deadline=None, derandomize=True)
@given(problems())
def test_fixed_point_and_gradients(problem):
    net, I, T = problem
    fp = nd.relax(net, I, **RELAX)
    assert fp.x.shape == I.shape
    assert np.all(fp.converged) and np.all(np.asarray(fp.residual) <= 1e-8)
    E1, g1 = nd.value_and_grad(net, I, T, method=nd.RecurrentBackprop(), **RELAX)
    E2, g2 = nd.value_and_grad(net, I, T, method=nd.ImplicitDiff(), **RELAX)
    assert abs(float(E1) - float(E2)) <= 1e-12
    if np.linalg.norm(np.asarray(g2.weights)) > 1e-12:
        assert relative_error(g1.weights, g2.weights) <= 1e-6
    outside = ~np.asarray(net.connectivity)
    assert np.all(np.asarray(g1.weights)[outside] == 0)
    # E counts output units only: changing targets elsewhere changes nothing.
    T_other = jnp.where(net.output_units, T, T + 1.0)
    E3, _ = nd.value_and_grad(net, I, T_other, method=nd.ImplicitDiff(), **RELAX)
    assert abs(float(E3) - float(E2)) <= 1e-12
