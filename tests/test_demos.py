"""Each demo runs (small) into a run folder whose numbers recompute in plain NumPy."""

import json

import numpy as np
import pytest

from neurodyn.cli import main


def _numpy_relax(W, I, x0=0.5, dt=0.05, steps=4000):
    """Euler steps of dx/dt = -x + g(Wx) + I with the logistic g, in NumPy."""
    x = np.full_like(I, x0)
    for _ in range(steps):
        x = x + dt * (-x + 1 / (1 + np.exp(-x @ W.T)) + I)
    return x


@pytest.fixture(scope="module")
def first_order_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "first-order"
    assert main(["demo", "first-order", "--out", str(out), "--small"]) == 0
    return out


def test_first_order_run_folder(first_order_run):
    out = first_order_run
    metrics = json.loads((out / "metrics.json").read_text())
    params, data = np.load(out / "params.npz"), np.load(out / "data.npz")
    assert set(params) == {"weights", "input_units", "output_units", "connectivity"}
    assert (out / "relaxation.png").stat().st_size > 10_000
    W = np.where(params["connectivity"], params["weights"], 0)
    I = np.where(params["input_units"], data["I"], 0)
    x = _numpy_relax(W, I)
    E = 0.5 * np.sum(np.where(params["output_units"], data["T"] - x, 0) ** 2)
    assert metrics["converged"]
    assert abs(E - metrics["E_total"]) <= 1e-5 * max(1.0, E)
    for difference in metrics[
        "gradient_relative_difference_vs_RecurrentBackprop"
    ].values():
        assert difference <= 1e-4  # float32


def test_cli_errors(tmp_path, capsys):
    assert main(["demo", "no-such-demo", "--out", str(tmp_path / "x")]) == 2
    assert "Unknown demo 'no-such-demo'" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["demo", "first-order", "--out", str(blocker)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*partial*"))


def test_demo_list(capsys):
    assert main(["demo", "--list"]) == 0
    assert "first-order" in capsys.readouterr().out
