"""Sweeps: one config, many independent training runs (seeds, learning rates, ...)."""

import copy
import itertools

from ._config import check_config


_SEPARATORS = set("/\\\0")  # path separators, and NUL (in no file name)


def expand_sweep(config: dict) -> dict[str, dict]:
    """The runs of a config's `"sweep"`: one per combination of the values it lists.

    `"sweep": {"seed": [0, 1], "optimizer.learning_rate": [0.1, 0.3]}` gives four
    runs, named like `seed=0,optimizer.learning_rate=0.1` (the names of their run
    folders), each the config without `"sweep"` and with those keys set (a dotted key
    names a key inside a section). Each run is checked as a config on its own.
    """
    sweep = config["sweep"]
    if not sweep:
        raise ValueError("config key 'sweep' must list at least one key to vary.")
    for key, values in sweep.items():
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, (int, float, str)) for v in values)
            or len(set(map(str, values))) != len(values)
        ):
            raise ValueError(
                f"config sweep key {key!r} must list distinct numbers or strings, got "
                f"{values!r}."
            )
        # The values name run folders: `a/../..` would write outside the sweep.
        unsafe = [v for v in values if _SEPARATORS & set(str(v))]
        if unsafe:
            raise ValueError(
                f"config sweep key {key!r}: the values name run folders, so they "
                f"cannot hold a path separator, got {unsafe[0]!r}."
            )
        if key == "sweep" or key.split(".")[0] == "patterns":
            raise ValueError(
                f"config sweep key {key!r} cannot be swept; sweep seeds, rates, modes "
                "or model settings."
            )
    runs = {}
    for combination in itertools.product(*sweep.values()):
        run = copy.deepcopy({k: v for k, v in config.items() if k != "sweep"})
        for key, value in zip(sweep, combination):
            *sections, last = key.split(".")
            target = run
            for section in sections:
                target = target.get(section)
                if not isinstance(target, dict):
                    raise ValueError(
                        f"config sweep key {key!r} does not name a key of a section "
                        "(e.g. 'seed' or 'optimizer.learning_rate')."
                    )
            target[last] = value
        name = ",".join(f"{k}={v}" for k, v in zip(sweep, combination))
        try:
            runs[name] = check_config(run)
        except ValueError as e:
            raise ValueError(f"Sweep run {name}: {e}") from None
    return runs
