"""Bad input at the command line: every command refuses a bad config, config file
or folder with one line on stderr and exit code 2, never a traceback (the API's
arguments are fuzzed in test_bad_input.py)."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from neurodyn.cli import main

from .helpers import as_a_user_calls  # noqa: F401 - autouse: neurodyn's own checks


N, P = 3, 2
I = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
T = np.full((P, N), 0.5)


# The command line: every command refuses bad input with one line and exit code 2.

CONFIG = {
    "model": {"n_units": N, "input_units": [0], "output_units": [2]},
    "patterns": {"I": I.tolist(), "T": T.tolist()},
    "optimizer": {"name": "sgd", "learning_rate": 0.5},
    "steps": 2,
}
# (section or None, key): invalid values. A value out of these never trains.
BAD_CONFIG_VALUES = {
    (None, "steps"): [-1, 1.5, "3", None, True],
    (None, "seed"): [-1, 1.5, "0"],
    (None, "checkpoint_every"): [0, -2, 2.5],
    (None, "mode"): ["random", 3],
    (None, "method"): ["Newton", 1],
    ("model", "n_units"): [0, -3, 2.5, "3", N + 1],
    ("model", "tau"): [0, -1.0, float("nan"), float("inf"), "1"],
    ("model", "weight_scale"): [float("nan"), float("inf"), "x"],
    ("model", "activation"): ["relu", 3],
    ("model", "input_units"): [[7], [-1], "0", [0.5]],
    ("model", "class"): ["Hopfield"],
    ("optimizer", "name"): ["lbfgs", 3],
    ("optimizer", "learning_rate"): [0, -0.1, float("nan"), float("inf"), "0.1"],
    ("patterns", "I"): [[], [[0, 0]], [[float("nan"), 0, 0]] * P, "abc", [[0, 0, 0]]],
    ("patterns", "T"): [[], [[0, 0, 0, 0]] * P, [[0, float("inf"), 0]] * P, [[1]]],
    (None, "stpes"): [3],  # an unknown key
}


def _one_line_error(capsys, *names: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("neurodyn: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert any(f"'{name}'" in err or f"`{name}`" in err for name in names), err
    return err


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_train_refuses_a_bad_config_by_key(tmp_path, capsys, data):
    section, key = data.draw(st.sampled_from(sorted(BAD_CONFIG_VALUES, key=str)))
    value = data.draw(st.sampled_from(BAD_CONFIG_VALUES[section, key]))
    config = json.loads(json.dumps(CONFIG))
    (config if section is None else config[section])[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    # A wrong number of units shows in the patterns of that size.
    _one_line_error(capsys, key, *(["I"] if key == "n_units" else []))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("{", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (b"\xff\xfe\x00", "is not valid JSON"),
        (json.dumps({k: v for k, v in CONFIG.items() if k != "optimizer"}), "Missing"),
    ],
)
def test_train_refuses_a_bad_config_file(tmp_path, capsys, content, message):
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "no-such-demo"], "Unknown demo 'no-such-demo'"),
        (["demo", "xor", "--out", "/proc/x"], "/proc/x"),
        (["demo", "xor", "--out", "/dev/null"], "is not a folder"),
        (["train", "--config", "{c}", "--out", "/proc/x"], "/proc/x"),
        (["plot", "/no/such/run"], "does not exist"),
        (["plot", "{tmp}"], "not a finished run folder"),
    ],
)
def test_commands_refuse_bad_folders(tmp_path, capsys, argv, message):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    argv = [a.format(c=config, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
