"""Pattern batches sharded across devices give the unsharded results."""

import json
import os
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import pytest

import neurodyn as nd


ROOT = pathlib.Path(__file__).resolve().parent.parent
DEVICES = 8


def sharded_run(out: str) -> None:
    """Run in a fresh process whose CPU shows 8 devices: relax and value_and_grad on
    a batch, unsharded and sharded, and write what the test checks to `out`."""
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    jax.config.update(
        "jax_compilation_cache_dir",
        os.environ.get("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".cache" / "jax")),
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

    rng = np.random.default_rng(0)
    n, p = 5, 2 * DEVICES
    net = nd.FirstOrderNetwork(
        0.8 * rng.standard_normal((n, n)) / np.sqrt(n),
        output_units=np.arange(n) >= 2,
    )
    I = jnp.asarray(rng.uniform(-1.0, 1.0, (p, n)))
    T = jnp.asarray(rng.uniform(0.1, 0.9, (p, n)))
    fp = nd.relax(net, I)
    E, grads = nd.value_and_grad(net, I, T)

    I_sharded, T_sharded = nd.shard_patterns(I, T)
    fp_sharded = nd.relax(net, I_sharded)
    E_sharded, grads_sharded = nd.value_and_grad(net, I_sharded, T_sharded)
    try:
        nd.shard_patterns(I[:6])
        error = ""
    except ValueError as e:
        error = str(e)

    def pattern_blocks(x):
        return sorted({shard.data.shape[0] for shard in x.addressable_shards})

    facts = {
        "devices": len(jax.devices()),
        "input_spec": list(I_sharded.sharding.spec),
        "x_devices": len(fp_sharded.x.sharding.device_set),
        "x_sharded_like_input": fp_sharded.x.sharding.is_equivalent_to(
            I_sharded.sharding, 2
        ),
        "x_blocks": pattern_blocks(fp_sharded.x),
        "steps_blocks": pattern_blocks(fp_sharded.num_steps),
        "all_converged": bool(jnp.all(fp.converged)),
        "same_converged": bool(jnp.all(fp.converged == fp_sharded.converged)),
        "x_diff": float(jnp.max(jnp.abs(fp_sharded.x - fp.x))),
        "E": float(E),
        "E_diff": float(jnp.abs(E_sharded - E)),
        "grad_scale": float(jnp.max(jnp.abs(grads.weights))),
        "grad_diff": float(jnp.max(jnp.abs(grads_sharded.weights - grads.weights))),
        "grad_devices": len(grads_sharded.weights.sharding.device_set),
        "error": error,
    }
    pathlib.Path(out).write_text(json.dumps(facts))


@pytest.mark.slow  # a fresh interpreter with 4 host devices compiles everything again
def test_sharded_patterns_give_the_unsharded_results(tmp_path):
    out = tmp_path / "facts.json"
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}",
    }
    code = f"from tests.test_sharding import sharded_run; sharded_run({str(out)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(out.read_text())

    assert facts["devices"] == DEVICES
    assert facts["input_spec"] == ["patterns"]
    # Per-pattern outputs stay split the way the patterns were: 2 per device.
    assert facts["x_devices"] == DEVICES and facts["x_sharded_like_input"]
    assert facts["x_blocks"] == [2] and facts["steps_blocks"] == [2]
    assert facts["all_converged"] and facts["same_converged"]
    assert facts["x_diff"] < 1e-12
    # The loss and gradient sum over patterns, so across devices: round-off only.
    assert facts["E_diff"] < 1e-12 * max(1.0, facts["E"])
    assert facts["grad_diff"] < 1e-12 * facts["grad_scale"]
    assert facts["grad_devices"] == DEVICES
    assert "6 patterns do not divide among 8 devices" in facts["error"]


def test_shard_patterns_checks_its_arguments():
    I = jnp.zeros((4, 3))
    assert nd.shard_patterns(I).shape == (4, 3)
    with pytest.raises(ValueError, match="at least one array"):
        nd.shard_patterns()
    with pytest.raises(ValueError, match="same number of patterns"):
        nd.shard_patterns(I, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="got a scalar"):
        nd.shard_patterns(jnp.zeros(()))
    with pytest.raises(ValueError, match="at least one device"):
        nd.shard_patterns(I, devices=[])
