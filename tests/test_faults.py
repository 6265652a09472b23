"""Runs that survive faults: SIGKILL then --resume equals the uninterrupted run bit
for bit; damaged or foreign checkpoints, configs and run folders are refused in one
line."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn._config import build, optimizer
from neurodyn._learning.checkpoint import fingerprint
from neurodyn._learning.train import _identity
from neurodyn.cli import main


# Three units, two patterns: the smallest run that still learns something.
CONFIG = {
    "model": {"n_units": 3, "input_units": [0], "output_units": [2]},
    "patterns": {"I": [[0, 0, 0], [1, 0, 0]], "T": [[0, 0, 0.2], [0, 0, 0.8]]},
    "optimizer": {"name": "sgd", "learning_rate": 1.0},
    "steps": 6,
    "checkpoint_every": 2,
}


def _write_config(folder: pathlib.Path, config: dict = CONFIG) -> pathlib.Path:
    path = folder / f"config-{len(list(folder.glob('config-*')))}.json"
    path.write_text(json.dumps(config))
    return path


def _cli(*args) -> subprocess.Popen:
    """`neurodyn ARGS` in a fresh interpreter, in the test process's precision."""
    env = {**os.environ, "JAX_ENABLE_X64": str(jax.config.jax_enable_x64)}
    return subprocess.Popen(
        [sys.executable, "-m", "neurodyn.cli", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_folder_arrays(folder: pathlib.Path) -> dict:
    arrays = {}
    for name in ("params.npz", "data.npz", "history.npz"):
        with np.load(folder / name) as content:
            arrays.update({f"{name}:{k}": content[k] for k in content.files})
    return arrays


def _assert_same_run(a: pathlib.Path, b: pathlib.Path) -> None:
    first, second = _run_folder_arrays(a), _run_folder_arrays(b)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert np.array_equal(first[name], second[name]), name
    for name in ("metrics.json", "config.json"):
        assert (a / name).read_text() == (b / name).read_text()


def _kill_after_checkpoint(config: pathlib.Path, out: pathlib.Path) -> int:
    """Start `neurodyn train`, SIGKILL it as soon as a checkpoint exists; the step
    of that checkpoint."""
    pointer = out / "checkpoint" / "checkpoint.json"
    run = _cli("train", "--config", config, "--out", out)
    try:
        while not pointer.exists():
            assert run.poll() is None, f"the run ended first: {run.stderr.read()}"
            time.sleep(0.002)
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait()
    assert run.returncode == -signal.SIGKILL
    return json.loads(pointer.read_text())["step"]


def _sigkill_then_resume(tmp_path: pathlib.Path, config: dict) -> None:
    path = _write_config(tmp_path, config)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["train", "--config", str(path), "--out", str(whole)]) == 0
    step = _kill_after_checkpoint(path, killed)
    assert 0 < step < config["steps"]  # killed mid-run, not after it
    assert not (killed / "metrics.json").exists()
    resumed = _cli("train", "--config", path, "--out", killed, "--resume")
    assert resumed.wait() == 0, resumed.stderr.read()
    _assert_same_run(whole, killed)


@pytest.mark.slow  # three fresh interpreters: ~1 min on a busy 2-core machine
def test_sigkill_then_resume_equals_the_uninterrupted_run(tmp_path):
    _sigkill_then_resume(
        tmp_path, {**CONFIG, "steps": 60, "checkpoint_every": 1, "seed": 3}
    )


@pytest.mark.slow
def test_sigkill_then_resume_with_a_stateful_optimizer(tmp_path):
    config = {
        **CONFIG,
        "optimizer": {"name": "rmsprop", "learning_rate": 0.05},
        "mode": "stochastic",
        "steps": 60,
        "checkpoint_every": 3,
    }
    _sigkill_then_resume(tmp_path, config)


def test_a_crash_at_any_file_operation_resumes_to_the_uninterrupted_run(
    finished_run, tmp_path, monkeypatch
):
    """The default suite's stand-in for SIGKILL: the run dies (without any handler
    running) at the k-th fsync or rename of its files, for every fifth k (each kind
    of operation in turn); the files it leaves behind then resume to the
    uninterrupted run."""
    config, whole = finished_run
    real = {name: getattr(os, name) for name in ("fsync", "replace")}
    count = {"n": 0, "crash_at": None}

    class Killed(BaseException):
        """Not an Exception: no `except` in the code under test can catch it."""

    def spy(name):
        def operation(*args):
            count["n"] += 1
            if count["n"] == count["crash_at"]:
                raise Killed
            return real[name](*args)

        return operation

    for name in real:
        monkeypatch.setattr(os, name, spy(name))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "n")]) == 0
    operations = count["n"]
    # Every atomic write is three operations (fsync, rename, fsync of the folder); a
    # stride prime to 3 crashes at each kind in turn (63 operations, 13 crashes).
    for crash_at in range(1, operations + 1, 5):
        out = tmp_path / f"crash-{crash_at}"
        count.update(n=0, crash_at=crash_at)
        with pytest.raises(Killed):
            main(["train", "--config", str(config), "--out", str(out)])
        count.update(crash_at=None)
        assert (
            main(["train", "--config", str(config), "--out", str(out), "--resume"]) == 0
        )
        _assert_same_run(whole, out)


def test_cli_builds_the_optimizer_it_names():
    grads = {"w": jnp.array([1.0, -2.0])}
    for name in ("sgd", "adam", "rmsprop"):
        mine, theirs = optimizer(name, 0.1), getattr(optax, name)(0.1)
        ours = mine.update(grads, mine.init(grads))[0]["w"]
        assert np.array_equal(ours, theirs.update(grads, theirs.init(grads))[0]["w"])


@pytest.mark.slow  # its own compilation: ~30 s on a busy machine
def test_cli_trains_and_resumes_with_adam(tmp_path):
    """The config's adam reaches optax with its learning rate and resumes (its moment
    estimates live in the checkpoint) to the uninterrupted run."""
    config = {**CONFIG, "optimizer": {"name": "adam", "learning_rate": 0.1}}
    path = _write_config(tmp_path, config)
    whole, half = tmp_path / "whole", tmp_path / "half"
    assert main(["train", "--config", str(path), "--out", str(whole)]) == 0
    metrics = json.loads((whole / "metrics.json").read_text())
    assert metrics["final_E_total"] < metrics["initial_E_total"]
    short = _write_config(tmp_path, {**config, "steps": 3})
    assert main(["train", "--config", str(short), "--out", str(half)]) == 0
    assert main(["train", "--config", str(path), "--out", str(half), "--resume"]) == 0
    _assert_same_run(whole, half)


# Damaged and foreign checkpoints, at the level of `nd.train`.


@pytest.fixture(scope="module")
def problem():  # what `neurodyn train` builds from CONFIG: they share a compilation
    model, I, T, _ = build(CONFIG)
    return model, I, T


def _train(problem, folder, resume=False, optimizer=optimizer("sgd", 1.0), **changes):
    net, I, T = problem
    return nd.train(
        changes.pop("net", net),
        changes.pop("I", I),
        changes.pop("T", T),
        optimizer=optimizer,
        steps=changes.pop("steps", 2),
        checkpoint_dir=folder,
        checkpoint_every=1,
        resume=resume,
        **changes,
    )


def _truncate(path: pathlib.Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_middle_byte(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: _truncate(d / "state-2.eqx"),
            r"corrupt: state-2.eqx does not match",
        ),
        (lambda d: _flip_middle_byte(d / "state-2.eqx"), r"corrupt: state-2.eqx does"),
        (lambda d: _truncate(d / "history-2.npz"), r"corrupt: history-2.npz does not"),
        (
            lambda d: (d / "history-2.npz").unlink(),
            r"incomplete: history-2.npz is miss",
        ),
        (lambda d: (d / "run-2.json").unlink(), r"incomplete: run-2.json is missing"),
        (
            lambda d: _truncate(d / "checkpoint.json"),
            r"corrupt: checkpoint.json is not",
        ),
        (lambda d: _truncate(d / "run-2.json"), r"corrupt: run-2.json is not valid"),
        (
            lambda d: (d / "checkpoint.json").write_text('{"step": 1}'),
            r"incomplete: run-1.json is missing",
        ),
    ],
)
def test_damaged_checkpoints_are_refused(problem, tmp_path, damage, message):
    _train(problem, tmp_path)
    damage(tmp_path)
    with pytest.raises(ValueError, match=f"Checkpoint in .*{message}.*delete that"):
        _train(problem, tmp_path, resume=True, steps=3)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(net=nd.FirstOrderNetwork(np.zeros((4, 4)))),
            r"another model or optimizer: `\[0\]\.weights` is \(3, 3\) float64 there "
            r"but \(4, 4\) float64 here",
        ),
        (dict(optimizer=optax.adam(0.1)), r"another model or optimizer"),
        (dict(I=np.zeros((2, 3))), r"another run: the patterns"),
        (dict(T=np.full((2, 3), 0.5)), r"another run: the patterns"),
        (dict(mode="stochastic"), r"another run: the patterns, start state, mode"),
        (dict(method=nd.ImplicitDiff()), r"another run"),
        (dict(key=jax.random.key(9)), r"another run"),
        (dict(x0=jnp.full(3, 0.2)), r"another run"),
        (dict(reinitialize=False), r"another run"),
    ],
)
def test_foreign_checkpoints_are_refused(problem, tmp_path, change, message):
    _train(problem, tmp_path)
    if "net" in change:  # a 4-unit network needs 4-unit patterns
        change.update(I=np.zeros((2, 4)), T=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=message):
        _train(problem, tmp_path, resume=True, steps=3, **change)


def test_fingerprint_holds_every_setting_of_a_strategy():
    """Another beta (a number or an array), one-sided against symmetric, another
    number of phantom steps (static) or of penalty probes: another fingerprint."""
    same = [
        nd.EquilibriumPropagation(0.1),
        nd.EquilibriumPropagation(jnp.asarray(0.1)),
        nd.PhantomGradient(3),
        nd.JacobianPenalty(0.1),
    ]
    other = [
        nd.EquilibriumPropagation(0.2),
        nd.EquilibriumPropagation(jnp.asarray(0.2)),
        nd.PhantomGradient(4),
        nd.JacobianPenalty(0.1, probes=2),
        nd.EquilibriumPropagation(0.1, symmetric=True),
    ]
    ids = [fingerprint(procedure=_identity(s)) for s in same + other]
    assert len(set(ids)) == len(ids)
    assert ids[0] == fingerprint(procedure=_identity(nd.EquilibriumPropagation(0.1)))


@pytest.mark.slow
def test_resume_with_other_method_settings_is_refused(problem, tmp_path):
    """The fingerprint holds each strategy's settings, not only its type: a run of
    EP at beta = 0.1 resumes only at beta = 0.1, one-sided."""
    units = np.arange(3)
    net = nd.EnergyNetwork(
        np.zeros((3, 3)), input_units=units == 0, output_units=units == 2
    )
    ep = nd.EquilibriumPropagation(0.1)
    _train(problem, tmp_path, net=net, method=ep)
    for other in (nd.EquilibriumPropagation(0.2), nd.EquilibriumPropagation(0.1, True)):
        with pytest.raises(ValueError, match="another run"):
            _train(problem, tmp_path, resume=True, steps=3, net=net, method=other)
    resumed = _train(problem, tmp_path, resume=True, steps=3, net=net, method=ep)
    assert resumed.history.E_total.shape == (4,)  # E after 0, ..., 3 updates


def test_resume_may_extend_a_run(problem, tmp_path):
    _train(problem, tmp_path)
    longer = _train(problem, tmp_path, resume=True, steps=4)
    whole = _train(problem, tmp_path / "whole", steps=4)
    for a, b in zip(jax.tree.leaves(longer), jax.tree.leaves(whole)):
        assert np.array_equal(a, b)


def test_checkpoint_files_are_synced_before_they_are_renamed(
    problem, tmp_path, monkeypatch
):
    """Every file is fsynced under its temporary name, renamed over its final name,
    then the folder is fsynced: a crash leaves an old or a complete file."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(pathlib.Path(src).resolve())))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    _train(problem, tmp_path, steps=1)
    folder = str(tmp_path.resolve())
    renamed = [path for kind, path in events if kind == "replace"]
    assert {pathlib.Path(p).name for p in renamed} == {
        ".state-1.eqx.tmp",
        ".history-1.npz.tmp",
        ".run-1.json.tmp",
        ".checkpoint.json.tmp",
    }
    assert renamed[-1].endswith(".checkpoint.json.tmp")  # the pointer goes last
    for path in renamed:
        i = events.index(("replace", path))
        assert events[i - 1] == ("fsync", path)
        assert events[i + 1] == ("fsync", folder)
    assert not list(tmp_path.glob(".*.tmp"))


def test_leftovers_of_a_kill_are_cleaned_and_other_files_kept(problem, tmp_path):
    (tmp_path / ".state-9.eqx.tmp").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("mine")
    _train(problem, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        "history-2.npz",
        "notes.txt",
        "run-2.json",
        "state-2.eqx",
    ]


# The command line: one line on stderr, exit code 2, never a traceback.


def _one_line_error(capsys, pattern: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert pattern in err, err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    config = _write_config(folder)
    assert main(["train", "--config", str(config), "--out", str(folder / "out")]) == 0
    return config, folder / "out"


def _copy(run: pathlib.Path, to: pathlib.Path) -> pathlib.Path:
    import shutil

    return pathlib.Path(shutil.copytree(run, to))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: _truncate(d / "checkpoint" / "state-6.eqx"), "is corrupt"),
        (lambda d: (d / "checkpoint" / "checkpoint.json").write_text("{"), "corrupt"),
        (lambda d: (d / "config.json").write_text("{"), "is not valid JSON"),
    ],
)
def test_cli_refuses_damaged_checkpoints(
    finished_run, tmp_path, capsys, damage, message
):
    config, run = finished_run
    run = _copy(run, tmp_path / "run")
    damage(run)
    assert main(["train", "--config", str(config), "--out", str(run), "--resume"]) == 2
    _one_line_error(capsys, message)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"optimizer": {"name": "sgd", "learning_rate": 0.5}}, "key 'optimizer' is"),
        ({"seed": 1}, "key 'seed' is None there, 1 now"),
        ({"model": {"n_units": 3}}, "key 'model' is"),
    ],
)
def test_cli_refuses_to_resume_with_another_config(
    finished_run, tmp_path, capsys, change, message
):
    _, run = finished_run
    run = _copy(run, tmp_path / "run")
    config = _write_config(tmp_path, {**CONFIG, **change})
    assert main(["train", "--config", str(config), "--out", str(run), "--resume"]) == 2
    _one_line_error(capsys, message)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "metrics.json").unlink(), "not a finished run folder"),
        (lambda d: (d / "metrics.json").write_text('{"final'), "metrics.json' is dam"),
        (lambda d: _truncate(d / "params.npz"), "params.npz' is damaged"),
        (
            lambda d: (d / "params.npz").write_text("not an archive"),
            "params.npz' is dam",
        ),
        (lambda d: (d / "history.npz").unlink(), "history.npz' is missing"),
        (lambda d: _flip_middle_byte(d / "history.npz"), "history.npz' is damaged"),
        (lambda d: np.savez(d / "history.npz", ts=np.zeros(3)), "holds no E_total"),
    ],
)
def test_plot_refuses_a_damaged_run_folder(
    finished_run, tmp_path, capsys, damage, message
):
    _, run = finished_run
    run = _copy(run, tmp_path / "run")
    damage(run)
    assert main(["plot", str(run)]) == 2
    _one_line_error(capsys, message)
    assert main(["plot", str(tmp_path / "nowhere")]) == 2
    _one_line_error(capsys, "does not exist")
