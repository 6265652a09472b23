"""The numerical core apart from its applications: `import neurodyn` loads no
plotting, scikit-learn or progress-bar package, `neurodyn.plot` chooses no backend,
and an install without extras learns (the slow test builds one)."""

import pathlib
import subprocess
import sys

import pytest

from neurodyn.cli import main


REPO = pathlib.Path(__file__).parents[1]
APPLICATION_PACKAGES = ("matplotlib", "sklearn", "rich", "tqdm")

# Every entry point that relaxes and learns, on a 3-unit network: run as a script so
# that sys.modules shows what they imported.
CORE_SCRIPT = """
import sys

import jax.numpy as jnp
import numpy as np
import optax

import neurodyn as nd

net = nd.FirstOrderNetwork(0.3 * np.eye(3), activation=nd.logistic,
                           output_units=np.array([False, False, True]))
I, T = jnp.array([[0.2, -0.1, 0.0]]), jnp.array([[0.0, 0.0, 0.7]])
assert bool(nd.relax(net, I).converged.all())
E, grads = nd.value_and_grad(net, I, T)
trained = nd.train(net, I, T, optimizer=optax.sgd(0.5), steps=3, progress=False)
run = nd.analog_learning(net, I, T, eta=0.5, t1=2.0)
assert trained.history.E_total[-1] < E and float(run.loss[-1]) < E
loaded = sorted(m for m in {packages!r} if m in sys.modules)
assert not loaded, loaded
print("core ok")
"""


def run_python(python, code, cwd=None):
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_import_loads_no_application_package_and_plot_keeps_the_backend(tmp_path):
    """`import neurodyn` imports none of matplotlib, scikit-learn, rich or tqdm;
    `import neurodyn.plot` leaves matplotlib's backend as it was, and saves a figure
    made without pyplot (so without any backend)."""
    code = f"""
import sys
import neurodyn
loaded = sorted(m for m in {APPLICATION_PACKAGES!r} if m in sys.modules)
assert not loaded, loaded
import matplotlib
before = dict.__getitem__(matplotlib.rcParams, "backend")
import neurodyn.plot as plot
from matplotlib.figure import Figure
assert dict.__getitem__(matplotlib.rcParams, "backend") is before
fig = Figure()
plot.learning_curves(fig.subplots(), {{"E": [1.0, 0.5, 0.1]}})
plot.save(fig, {str(tmp_path / "curve.png")!r})
assert "matplotlib.pyplot" not in sys.modules
"""
    run_python(sys.executable, code)
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_a_missing_extra_is_named_by_the_cli(tmp_path, monkeypatch, capsys):
    """Without matplotlib, `neurodyn demo NAME` says which extra to install instead
    of a traceback."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert main(["demo", "xor", "--small", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "needs matplotlib" in error and 'pip install "neurodyn[demos]"' in error
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_install_without_extras_relaxes_and_learns(tmp_path):
    """`pip install .` (a wheel, no extras) into a fresh venv: relax,
    value_and_grad, train and analog_learning run, and no application package is
    installed, so none can have been needed."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(REPO)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = "import importlib.util as u; print([u.find_spec(m) for m in {!r}])"
    absent = run_python(python, found.format(APPLICATION_PACKAGES), cwd=tmp_path)
    assert absent.strip() == str([None] * len(APPLICATION_PACKAGES))
    script = CORE_SCRIPT.format(packages=APPLICATION_PACKAGES)
    assert run_python(python, script, cwd=tmp_path).strip() == "core ok"
