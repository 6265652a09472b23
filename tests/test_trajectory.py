import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd

from .helpers import TIGHT, random_network, random_patterns


def test_trajectories_end_at_the_fixed_points():
    net = random_network(nd.FirstOrderNetwork)
    I, T = random_patterns()
    fp = nd.relax(net, I, relaxation=nd.Relaxation(**TIGHT))
    ts = jnp.linspace(0.0, 60.0, 7)
    xs = nd.trajectory(net, I, ts, **TIGHT)
    assert xs.shape == (3, 7, 6)
    assert np.allclose(np.asarray(xs[:, 0]), 0.5)
    assert np.allclose(np.asarray(xs[:, -1]), np.asarray(fp.x), atol=1e-9)
    zs = nd.adjoint_trajectory(net, fp.x, I, T, ts, **TIGHT)
    assert np.allclose(np.asarray(zs[:, 0]), 0.0)
    # z* solves (1 - dF/dx)^T z = J
    zfinal = nd.adjoint_field(net, fp.x[0], I[0], zs[0, -1], net.error(fp.x[0], T[0]))
    assert np.max(np.abs(np.asarray(zfinal))) <= 1e-9


def test_times_must_increase():
    net = random_network(nd.FirstOrderNetwork)
    with pytest.raises(ValueError, match="`ts` must be an increasing"):
        nd.trajectory(net, jnp.zeros(6), jnp.array([1.0, 0.0]))
