"""Runs over several JAX processes (`jax.distributed`, 2 local CPU processes with 2
devices each) give the one-process results; checkpoints move between the two."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import cli, launch
from neurodyn._config import optimizer
from neurodyn._sweep import expand_sweep
from neurodyn.launch import reserved_port, spawn


ROOT = pathlib.Path(__file__).resolve().parent.parent
PROCESSES, DEVICES_EACH = 2, 2
STEPS, HALF = 4, 2
# The CLI's optimizer object: the compiled update keys on it, so runs share it.
OPTIMIZER = optimizer("sgd", 0.5)
KEY_SEED = 3
SWEEP = {"sweep": {"seed": [0, 1]}}
ANALOG = dict(eta=0.5, t1=2.0, saveat=np.array([0.0, 1.0, 2.0]))
# Every process compiles every program: ~25 min of wall time measured on a 2-core
# machine shared with other jobs (load ~15), a few on a quiet one.
TIMEOUT = 1800


def problem():
    """A 4-unit network and 8 patterns: 2 per device of the 4-device mesh."""
    rng = np.random.default_rng(1)
    n, p = 4, PROCESSES * DEVICES_EACH * 2
    model = nd.FirstOrderNetwork(
        0.3 * rng.standard_normal((n, n)),
        input_units=np.arange(n) < 2,
        output_units=np.arange(n) >= 2,
    )
    I = rng.uniform(-1.0, 1.0, (p, n))
    T = rng.uniform(0.2, 0.8, (p, n))
    return model, I, T


def config(steps: int = STEPS) -> dict:
    model, I, T = problem()
    return {
        "model": {"n_units": 4, "input_units": [0, 1], "output_units": [2, 3]},
        "patterns": {"I": I.tolist(), "T": T.tolist()},
        "optimizer": {"name": "sgd", "learning_rate": 0.5},
        "steps": steps,
        "checkpoint_every": 1,
    }


def fit(I, T, folder: pathlib.Path | None, steps=STEPS, mode="deterministic", **kw):
    model = problem()[0]
    return nd.train(
        model,
        I,
        T,
        optimizer=OPTIMIZER,
        steps=steps,
        mode=mode,
        key=jr.key(KEY_SEED),
        checkpoint_dir=folder,
        checkpoint_every=1,
        **kw,
    )


def distributed_run(folder: str, address: str, rank: int) -> None:
    """One of the processes: join the run, train and integrate with the patterns
    sharded over every process's devices; process 0 saves what the tests check."""
    from neurodyn.launch import initialize

    initialize(address, PROCESSES, rank)
    import jax
    from jax.experimental import multihost_utils

    from neurodyn._learning.checkpoint import to_host

    folder = pathlib.Path(folder)
    _, I, T = problem()
    I_sharded, T_sharded = nd.shard_patterns(I, T)
    facts = {
        "devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
        "spans": not I_sharded.is_fully_addressable,
    }
    model = problem()[0]
    facts["relax_x"] = to_host(nd.relax(model, I_sharded).x)
    facts["E"], grads = to_host(nd.value_and_grad(model, I_sharded, T_sharded))
    facts["grad_weights"] = grads.weights
    for mode in ("deterministic", "stochastic"):
        run = fit(I_sharded, T_sharded, folder / f"two-{mode}", mode=mode)
        facts[f"{mode}_weights"] = to_host(run.model.weights)
        facts[f"{mode}_E_patterns"] = run.history.E_patterns
    # Interrupted after HALF updates: one process resumes this checkpoint.
    fit(I_sharded, T_sharded, folder / "two-half", steps=HALF)
    if rank == 0:
        shutil.copytree(folder / "two-half", folder / "two-half-again")
    multihost_utils.sync_global_devices("copied")
    again = fit(I_sharded, T_sharded, folder / "two-half-again", resume=True)
    facts["resumed_two_weights"] = to_host(again.model.weights)
    # The checkpoint one process wrote, resumed by both.
    one = fit(I_sharded, T_sharded, folder / "one-half", resume=True)
    facts["resumed_one_weights"] = to_host(one.model.weights)
    facts["resumed_one_E_patterns"] = one.history.E_patterns
    analog = nd.analog_learning(problem()[0], I_sharded, T_sharded, **ANALOG)
    facts["analog_weights"] = to_host(analog.model.weights)
    facts["analog_x"] = to_host(analog.x)
    for name in ("config", "sweep"):
        command = ["train", "--config", str(folder / f"{name}.json")]
        assert cli.main([*command, "--out", str(folder / f"cli-{name}")]) == 0
    if rank == 0:
        np.savez(folder / "two.npz", **facts)


def run_processes(folder: pathlib.Path) -> None:
    """Start the processes, wait at most TIMEOUT, and always stop them."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES_EACH}",
        "JAX_ENABLE_X64": "1",
    }
    children = []
    with reserved_port() as port:
        try:
            for rank in range(PROCESSES):
                code = (
                    "from tests.test_processes import distributed_run; "
                    f"distributed_run({str(folder)!r}, '127.0.0.1:{port}', {rank})"
                )
                log = open(folder / f"process-{rank}.log", "w")
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-c", code],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            deadline = time.monotonic() + TIMEOUT
            for child in children:
                child.wait(timeout=max(1.0, deadline - time.monotonic()))
            logs = [(folder / f"process-{r}.log").read_text() for r in range(PROCESSES)]
            for child, log in zip(children, logs):
                assert child.returncode == 0, log[-3000:]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """The 2-process results (after the 1-process checkpoint they resume)."""
    folder = tmp_path_factory.mktemp("processes")
    _, I, T = problem()
    fit(I, T, folder / "one-half", steps=HALF)
    (folder / "config.json").write_text(json.dumps(config()))
    (folder / "sweep.json").write_text(json.dumps({**config(), **SWEEP}))
    run_processes(folder)
    with np.load(folder / "two.npz") as facts:
        return folder, {k: facts[k] for k in facts.files}


@pytest.mark.slow
def test_the_mesh_spans_both_processes(two):
    _, facts = two
    assert facts["devices"] == PROCESSES * DEVICES_EACH
    assert facts["local_devices"] == DEVICES_EACH
    assert facts["spans"]


@pytest.mark.slow
def test_relax_and_value_and_grad_over_two_processes_match_one(two):
    _, facts = two
    model, I, T = problem()
    np.testing.assert_allclose(facts["relax_x"], nd.relax(model, I).x, atol=1e-12)
    E, grads = nd.value_and_grad(model, I, T)
    np.testing.assert_allclose(facts["E"], E, rtol=1e-12)
    np.testing.assert_allclose(facts["grad_weights"], grads.weights, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["deterministic", "stochastic"])
def test_train_over_two_processes_matches_one(two, mode):
    _, facts = two
    _, I, T = problem()
    one = fit(I, T, None, mode=mode)
    # The sum over patterns is reduced across processes: round-off only.
    np.testing.assert_allclose(
        facts[f"{mode}_weights"], one.model.weights, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        facts[f"{mode}_E_patterns"], one.history.E_patterns, rtol=0, atol=1e-12
    )


@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_in_one_process(two):
    folder, facts = two
    _, I, T = problem()
    resumed = fit(I, T, folder / "two-half", resume=True)
    # The updates before the checkpoint are the 2-process run's, bit for bit...
    np.testing.assert_array_equal(
        resumed.history.E_patterns[:HALF], facts["deterministic_E_patterns"][:HALF]
    )
    # ...and in 2 processes the resumed run is the uninterrupted one, bit for bit.
    np.testing.assert_array_equal(
        facts["resumed_two_weights"], facts["deterministic_weights"]
    )
    np.testing.assert_allclose(
        resumed.model.weights, facts["deterministic_weights"], rtol=0, atol=1e-12
    )


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_in_two_processes(two):
    folder, facts = two
    _, I, T = problem()
    one = fit(I, T, None)
    np.testing.assert_array_equal(
        facts["resumed_one_E_patterns"][:HALF], one.history.E_patterns[:HALF]
    )
    np.testing.assert_allclose(
        facts["resumed_one_weights"], one.model.weights, rtol=0, atol=1e-12
    )


@pytest.mark.slow
def test_analog_learning_over_two_processes_matches_one(two):
    _, facts = two
    model, I, T = problem()
    one = nd.analog_learning(model, I, T, **ANALOG)
    # Adaptive steps on round-off-different states: equal to the solver tolerance.
    np.testing.assert_allclose(facts["analog_weights"], one.model.weights, atol=1e-6)
    np.testing.assert_allclose(facts["analog_x"], one.x, atol=1e-6)


@pytest.mark.slow
def test_the_cli_over_two_processes_writes_one_run_folder(two, tmp_path):
    folder, _ = two
    two_out, one_out = folder / "cli-config", tmp_path / "one"
    command = ["train", "--config", str(folder / "config.json")]
    assert cli.main([*command, "--out", str(one_out)]) == 0
    np.testing.assert_allclose(
        np.load(two_out / "params.npz")["weights"],
        np.load(one_out / "params.npz")["weights"],
        rtol=0,
        atol=1e-12,
    )
    pointer = json.loads((two_out / "checkpoint" / "checkpoint.json").read_text())
    assert pointer == {"step": STEPS}
    assert sorted(p.name for p in two_out.iterdir()) == sorted(
        p.name for p in one_out.iterdir()
    )


@pytest.mark.slow
def test_a_sweep_spreads_its_runs_over_the_processes(two, tmp_path, capsys):
    folder, _ = two
    sweep = folder / "cli-sweep"
    assert sorted(p.name for p in sweep.iterdir()) == ["seed=0", "seed=1", "sweep.json"]
    one_config = tmp_path / "seed1.json"
    one_config.write_text(json.dumps({**config(), "seed": 1}))
    assert (
        cli.main(["train", "--config", str(one_config), "--out", str(tmp_path / "one")])
        == 0
    )
    np.testing.assert_array_equal(
        np.load(sweep / "seed=1" / "params.npz")["weights"],
        np.load(tmp_path / "one" / "params.npz")["weights"],
    )
    assert cli.main(["plot", str(sweep)]) == 0
    assert (sweep / "learning_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_each_process_writes_only_its_share(two):
    folder, _ = two
    # A finished run prints its metrics where it writes its folder: process 0 the
    # sharded run and sweep run seed=0, process 1 sweep run seed=1 only.
    for rank, count in [(0, 2), (1, 1)]:
        log = (folder / f"process-{rank}.log").read_text()
        assert log.count('"final_E_total"') == count, log[-3000:]


def test_a_sweep_is_every_combination_of_its_values():
    runs = expand_sweep(
        {
            **config(),
            "sweep": {"seed": [0, 1], "optimizer.learning_rate": [0.1, 0.3]},
        }
    )
    assert list(runs) == [
        "seed=0,optimizer.learning_rate=0.1",
        "seed=0,optimizer.learning_rate=0.3",
        "seed=1,optimizer.learning_rate=0.1",
        "seed=1,optimizer.learning_rate=0.3",
    ]
    run = runs["seed=1,optimizer.learning_rate=0.3"]
    assert "sweep" not in run and run["seed"] == 1
    assert run["optimizer"] == {"name": "sgd", "learning_rate": 0.3}
    assert (
        runs["seed=0,optimizer.learning_rate=0.1"]["optimizer"]["learning_rate"] == 0.1
    )


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({}, "at least one key"),
        ({"seed": []}, "must list distinct"),
        ({"seed": [1, 1]}, "must list distinct"),
        ({"patterns.I": [1]}, "cannot be swept"),
        ({"nothing.seed": [1]}, "does not name a key"),
        ({"optimizer.learning_rate": [-1.0]}, "Sweep run optimizer.learning_rate=-1.0"),
        ({"optimizer.name": ["sgd", "../../sgd"]}, "cannot hold a path separator"),
        ({"optimizer.name": ["a\\b"]}, "cannot hold a path separator"),
    ],
)
def test_a_sweep_refuses_bad_values(sweep, message):
    with pytest.raises(ValueError, match=message):
        expand_sweep({**config(), "sweep": sweep})


def test_the_launcher_checks_its_arguments(tmp_path, capsys):
    command = ["train", "--config", "missing.json", "--out", str(tmp_path / "out")]
    assert cli.main([*command, "--processes", "0"]) == 2
    assert "`--processes` must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        launch.main([])
    for joins in (["--coordinator", "127.0.0.1:1"], ["--process-id", "0"]):
        with pytest.raises(SystemExit):
            launch.main(["--processes", "2", *joins, *command])
        assert "not both" in capsys.readouterr().err


def test_the_coordinator_port_is_held_until_the_processes_end():
    with reserved_port() as port:
        # Another program asking for this port is refused...
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
        # ...but a server that shares it (as the coordinator's gRPC does) binds.
        with socket.socket() as coordinator:
            coordinator.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            coordinator.bind(("127.0.0.1", port))
            coordinator.listen()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))


def _running(marker: str) -> list[str]:
    """The command lines of the processes whose command line holds `marker`."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in line:
            found.append(line)
    return found


@pytest.mark.slow
def test_the_launch_stops_its_processes(tmp_path):
    missing = ["train", "--config", "missing.json", "--out", str(tmp_path / "failed")]
    assert spawn(missing, 2, timeout=TIMEOUT) == 2
    (tmp_path / "config.json").write_text(json.dumps(config(steps=10_000)))
    endless = ["train", "--config", str(tmp_path / "config.json")]
    assert spawn([*endless, "--out", str(tmp_path / "endless")], 2, timeout=3) == 124
    assert _running(str(tmp_path)) == []
