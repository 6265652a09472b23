"""Each demo runs (small) into a run folder whose numbers recompute in plain NumPy."""

import ast
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from neurodyn._demos import demo_files
from neurodyn.cli import main

from .helpers import run_demo


def numpy_relax(params, I, dt=0.05, steps=6000):
    """Euler steps of dx/dt = -x + g(Wx) + I (logistic g) from x = 0.5, in NumPy."""
    W = np.where(params["connectivity"], params["weights"], 0.0)
    I = np.where(params["input_units"], I, 0.0)
    x = np.full_like(I, 0.5)
    for _ in range(steps):
        x = x + dt * (-x + 1 / (1 + np.exp(-x @ W.T)) + I)
    return x


def demo_folder(tmp_path_factory, name):
    out, metrics, arrays = run_demo(tmp_path_factory, name)
    return out, metrics, arrays["params"], arrays["data"]


@pytest.fixture(scope="module")
def first_order_run(tmp_path_factory):
    return demo_folder(tmp_path_factory, "first-order")


@pytest.fixture(scope="module", params=["xor", "analog-xor"])
def xor_run(request, tmp_path_factory):
    return demo_folder(tmp_path_factory, request.param)


@pytest.mark.slow
def test_first_order_run_folder(first_order_run):
    out, metrics, params, data = first_order_run
    assert set(params) == {"weights", "input_units", "output_units", "connectivity"}
    assert (out / "relaxation.png").stat().st_size > 10_000
    x = numpy_relax(params, data["I"])
    E = 0.5 * np.sum(np.where(params["output_units"], data["T"] - x, 0) ** 2)
    assert metrics["converged"]
    assert abs(E - metrics["E_total"]) <= 1e-5 * max(1.0, E)
    # each other method against RecurrentBackprop: close, but a real comparison
    # (identical arrays would mean a method was compared with itself)
    difference = metrics["gradient_relative_difference_vs_RecurrentBackprop"]
    assert set(difference) == {"RecurrentBackprop", "ImplicitDiff", "UnrolledBPTT"}
    assert difference["RecurrentBackprop"] == 0.0
    for name in ("ImplicitDiff", "UnrolledBPTT"):
        assert 0.0 < difference[name] <= 1e-4, name


@pytest.mark.slow
def test_xor_is_solved_and_recomputes_in_numpy(xor_run):
    """Pineda's claim: the recurrent network learns XOR; the run folder alone gives
    the outputs back."""
    out, metrics, params, data = xor_run
    unit = metrics["output_unit"]
    x = numpy_relax(params, data["I"])[:, unit]
    targets = data["T"][:, unit]
    assert metrics["correct"] == 4
    assert np.all((x > 0.5) == (targets > 0.5))
    assert np.all(np.abs(x - targets) < 0.05)
    assert np.allclose(x, metrics["outputs"], atol=1e-4)
    assert metrics["final_E_total"] < 1e-3 < metrics["initial_E_total"]
    if "stochastic" in metrics:  # xor: docs/learning.md's table
        # deterministic, 1000 updates: E = 3.2e-13 in float32 (7e-20 here, float64),
        # outputs 0.100, 0.900, 0.900, 0.100
        assert metrics["final_E_total"] < 1e-12
        assert np.allclose(metrics["outputs"], [0.1, 0.9, 0.9, 0.1], atol=1e-3)
        # stochastic, 2000 updates in the small run (docs: 4000): 1.3e-6 measured
        assert metrics["stochastic"]["correct"] == 4
        assert metrics["stochastic"]["final_E_total"] < 1e-5
    else:  # analog-xor, docs/learning.md: t1 = 1000 in the small run, E = 8.5e-11
        assert metrics["final_E_total"] < 1e-9
    assert list(out.glob("*.png"))


def test_cli_errors(tmp_path, capsys):
    assert main(["demo", "no-such-demo", "--out", str(tmp_path / "x")]) == 2
    assert "Unknown demo 'no-such-demo'" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["demo", "first-order", "--out", str(blocker)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*partial*"))
    assert main(["plot", str(tmp_path)]) == 2
    assert "is not a finished run folder" in capsys.readouterr().err


def test_demo_list(capsys):
    assert main(["demo", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("xor", "analog-xor", "first-order"))


XOR_CONFIG = {
    "model": {"n_units": 7, "input_units": [0, 1, 2], "output_units": [6]},
    "patterns": {
        "I": [
            [0, 0, 1, 0, 0, 0, 0],
            [0, 1, 1, 0, 0, 0, 0],
            [1, 0, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
        ],
        "T": [
            [0, 0, 0, 0, 0, 0, 0.1],
            [0, 0, 0, 0, 0, 0, 0.9],
            [0, 0, 0, 0, 0, 0, 0.9],
            [0, 0, 0, 0, 0, 0, 0.1],
        ],
    },
    "optimizer": {"name": "sgd", "learning_rate": 2.0},
    "steps": 40,
    "checkpoint_every": 10,
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stpes": 3}, "Unknown config key 'stpes'"),
        ({"steps": "10"}, "config key 'steps' must be int, got str"),
        ({"mode": "random"}, "config key 'mode' is 'random'; expected one of"),
        (
            {"optimizer": {"name": "sgd"}},
            "Missing config optimizer key 'learning_rate'",
        ),
        ({"model": {"n_units": 7, "colour": 1}}, "Unknown config model key 'colour'"),
        ({"model": {"n_units": 7, "output_units": [9]}}, "unit indices in \\[0, 7\\)"),
    ],
)
def test_train_config_errors(tmp_path, capsys, change, message):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({**XOR_CONFIG, **change}))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "r" / "metrics.json").exists()


# Resuming to the uninterrupted run is guarded in the default tier by
# test_faults.py (a crash at every file operation); this is the whole CLI round trip.
@pytest.mark.slow
def test_train_and_resume_from_the_command_line(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps(XOR_CONFIG))
    whole, half = tmp_path / "whole", tmp_path / "half"
    assert main(["train", "--config", str(config), "--out", str(whole)]) == 0
    config.write_text(json.dumps({**XOR_CONFIG, "steps": 20}))
    assert main(["train", "--config", str(config), "--out", str(half)]) == 0
    assert main(["train", "--config", str(config), "--out", str(half)]) == 2  # exists
    config.write_text(json.dumps(XOR_CONFIG))
    assert main(["train", "--config", str(config), "--out", str(half), "--resume"]) == 0
    a, b = np.load(whole / "params.npz"), np.load(half / "params.npz")
    assert np.array_equal(a["weights"], b["weights"])
    h1, h2 = np.load(whole / "history.npz"), np.load(half / "history.npz")
    assert np.array_equal(h1["E_total"], h2["E_total"])
    (whole / "learning_curves.png").unlink()
    assert main(["plot", str(whole)]) == 0
    assert (whole / "learning_curves.png").exists()


@pytest.mark.slow
def test_stability_demo_in_float32_as_users_run_it(tmp_path):
    """`neurodyn demo stability --small` in a fresh process without x64 (the CLI's
    float32, in which docs/stability.md's numbers were measured): Hopf at update 18,
    crossing 17.75, eta = 0.2 settling at -0.150 + 0.600i, Hessian eigenvalues
    6.835 at the optimum."""
    out = tmp_path / "stability"
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    code = "import sys; from neurodyn.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "demo", "stability", "--small", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert np.load(out / "params.npz")["weights"].dtype == np.float32
    metrics = json.loads((out / "metrics.json").read_text())
    stable, lost = metrics["runs"]["0.2"], metrics["runs"]["0.6"]
    assert stable["lost_at_update"] is None and stable["final_E_total"] < 1e-10
    assert stable["leading_end"] == pytest.approx([-0.150, 0.600], abs=1e-3)
    assert (lost["lost_at_update"], lost["kind"]) == (18, "Hopf")
    assert lost["crossing"] == pytest.approx(17.75, abs=0.01)
    for key in ("hessian_min_eigenvalue_end", "hessian_max_eigenvalue_end"):
        assert metrics[key] == pytest.approx(6.835, abs=2e-3)


REPO = pathlib.Path(__file__).resolve().parent.parent


def test_every_demo_file_keeps_the_demo_contract():
    """Each demos/NAME.py is listed under NAME, opens with `Demo `NAME`: ...`, defines
    `run(out, *, small=False)` and runs itself through `demo_script` (what `neurodyn
    demo` and the gallery rely on)."""
    files = {p.stem.replace("_", "-"): p for p in (REPO / "demos").glob("[!_]*.py")}
    assert len(files) >= 11
    assert demo_files() == {n: files[n] for n in sorted(files)}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree).startswith(f"Demo `{name}`: "), name
        (run,) = [f for f in tree.body if getattr(f, "name", None) == "run"]
        assert [a.arg for a in run.args.args] == ["out"], name
        assert [a.arg for a in run.args.kwonlyargs] == ["small"], name
        assert ast.literal_eval(run.args.kw_defaults[0]) is False, name
        assert ast.unparse(tree.body[-1]).endswith("demo_script(run, __file__)"), name


@pytest.mark.slow
def test_demo_script_and_cli_write_the_same_run_folder(tmp_path):
    """`python demos/NAME.py --out D` and `neurodyn demo NAME --out D`: same files,
    same arrays and metrics (timings aside)."""
    runs = {"script": tmp_path / "script", "cli": tmp_path / "cli"}
    commands = {
        "script": [sys.executable, str(REPO / "demos" / "first_order.py")],
        "cli": [sys.executable, "-m", "neurodyn.cli", "demo", "first-order"],
    }
    for how, out in runs.items():
        done = subprocess.run(
            [*commands[how], "--small", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=1200,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    script, cli = runs["script"], runs["cli"]
    names = sorted(p.name for p in script.iterdir())
    assert names == sorted(p.name for p in cli.iterdir())
    assert {"config.json", "metrics.json", "params.npz", "relaxation.png"} <= set(names)
    for npz in script.glob("*.npz"):
        a, b = np.load(npz), np.load(cli / npz.name)
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    for json_file in ("config.json", "metrics.json"):
        a, b = (json.loads((run / json_file).read_text()) for run in (script, cli))
        a.pop("gradient_seconds", None), b.pop("gradient_seconds", None)
        assert a == b


@pytest.mark.slow
def test_demo_list_from_a_non_editable_install(tmp_path):
    """`pip install ".[demos]"` into a fresh venv (a wheel: no checkout on the path)
    still lists every demo of demos/, from the copies inside the installed package."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{REPO}[demos]"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    code = "import neurodyn._demos as d; print(*d.__path__)"
    where = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert where.stdout.strip() == str(
        venv
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
        / "neurodyn"
        / "_demos"
    )
    listed = subprocess.run(
        [venv / "bin" / "neurodyn", "demo", "--list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    names = [line.split()[0] for line in listed.splitlines()]
    assert names == sorted(
        p.stem.replace("_", "-") for p in REPO.glob("demos/[!_]*.py")
    )
