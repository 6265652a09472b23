"""The `neurodyn` command.

- `neurodyn demo NAME --out DIR`, `neurodyn demo --list`: paper experiments.
- `neurodyn train --config FILE --out DIR [--resume] [--processes K]`: a training
  run from JSON (its patterns sharded over K local processes), or a sweep of runs
  (spread over the processes).
- `neurodyn plot DIR`: re-draw a run folder's learning curves from `history.npz`.
"""

import argparse
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

from ._runs import (
    check_run_folder,
    check_writable,
    jsonable,
    model_arrays,
    model_config,
    read_npz,
    staged_folder,
    write_json,
    write_npz,
)


def _demo(args: argparse.Namespace) -> int:
    from ._demos import demo_files, load, summary

    if args.list or args.name is None:
        for name, path in demo_files().items():
            print(f"{name:26s} {summary(path)}")
        return 0
    return _run_demo(args.name, load(args.name), args.out, args.small)


def _run_demo(
    name: str, run: Callable[..., dict[str, Any]], out: str | None, small: bool
) -> int:
    """Run a demo into the run folder `out` (default `runs/NAME`), staged so that a
    failed run leaves no half-written folder, and print its metrics."""
    folder = check_writable(pathlib.Path(out or f"runs/{name}"))
    import matplotlib

    matplotlib.use("Agg")  # the demos draw with pyplot into files: no screen
    with staged_folder(folder) as stage:
        metrics = run(stage, small=small)
    print(json.dumps(jsonable(metrics), indent=2))
    print(f"Run folder: {folder}")
    return 0


def demo_script(run: Callable[..., dict[str, Any]], file: str) -> None:
    """The command line of a demo script, `python demos/NAME.py [--out DIR]
    [--small]`: the same run folder as `neurodyn demo NAME`. Exits the process."""
    name = pathlib.Path(file).stem.replace("_", "-")
    parser = argparse.ArgumentParser(prog=f"python {file}", description=name)
    parser.add_argument("--out", help=f"run folder to write (default runs/{name})")
    parser.add_argument("--small", action="store_true", help="a quick, smaller version")
    args = parser.parse_args()
    sys.exit(_guarded(lambda: _run_demo(name, run, args.out, args.small), "demos"))


def _train(args: argparse.Namespace) -> int:
    if args.processes is not None and args.processes != 1:
        from .launch import spawn

        command = ["train", "--config", args.config, "--out", args.out]
        return spawn(command + ["--resume"] * args.resume, args.processes)
    import jax
    from jax.experimental import multihost_utils

    from ._config import check_same_run, load_config
    from ._sweep import expand_sweep

    config = load_config(pathlib.Path(args.config))
    out = check_writable(pathlib.Path(args.out))
    if "sweep" not in config:
        # Over several processes: one run, its patterns sharded over all devices.
        _train_run(config, out, args.resume, sharded=jax.process_count() > 1)
        return 0
    # A sweep: independent runs, each on one process, in a folder of its own.
    marker = out / "sweep.json"
    if marker.exists() and not args.resume:
        raise ValueError(
            f"{str(out)!r} already holds a sweep; pass --resume to continue it or "
            "choose another --out."
        )
    if args.resume and marker.exists():
        check_same_run(load_config(marker), config, out)
    runs = list(expand_sweep(config).items())
    # Every process has checked `out` before process 0 writes into it.
    multihost_utils.sync_global_devices("neurodyn train: sweep folder checked")
    if jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(marker, config)
    for name, run in runs[jax.process_index() :: jax.process_count()]:
        _train_run(run, out / name, args.resume, sharded=False)
    return 0


def _train_run(config: dict, out: pathlib.Path, resume: bool, sharded: bool) -> None:
    """Train the run `config` describes into the run folder `out`. If `sharded`,
    every process of a multi-process run calls this: the patterns are split over
    all their devices and process 0 writes the folder."""
    import jax
    from jax.experimental import multihost_utils

    from ._config import build, check_same_run, load_config
    from ._learning.train import train
    from ._sharding import shard_patterns

    checkpoints = out / "checkpoint"
    if checkpoints.exists() and not resume:
        raise ValueError(
            f"{str(out)!r} already holds a run; pass --resume to continue it or "
            "choose another --out."
        )
    if resume and (out / "config.json").exists():
        check_same_run(load_config(out / "config.json"), config, out)
    model, I, T, kwargs = build(config)
    patterns = (I, T)
    if sharded:
        # Every process has checked `out` before process 0 writes into it.
        multihost_utils.sync_global_devices("neurodyn train: run folder checked")
        patterns = shard_patterns(I, T)
    writes = not sharded or jax.process_index() == 0
    if writes:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config)
    result = train(
        model, *patterns, checkpoint_dir=checkpoints, resume=resume, **kwargs
    )
    if not writes:
        return
    write_npz(out / "params.npz", model_arrays(result.model))
    write_npz(out / "data.npz", {"I": I, "T": T})
    write_npz(out / "history.npz", {"E_total": result.history.E_total})
    _draw(out)
    metrics = {
        "model": model_config(result.model),
        "steps": config["steps"],
        "initial_E_total": float(result.history.E_total[0]),
        "final_E_total": float(result.history.E_total[-1]),
    }
    write_json(out / "metrics.json", metrics)  # last: its presence marks a finished run
    print(json.dumps(jsonable(metrics), indent=2))


def _curves(folder: pathlib.Path) -> dict:
    """The learning curves of a run folder's `history.npz`, by label."""
    history = read_npz(folder / "history.npz")
    ts = history.get("ts")
    curves = {
        k.removeprefix("E_total").strip("_") or "E_total": v
        for k, v in history.items()
        if k.startswith("E_total")
    }
    if not curves:
        raise ValueError(f"{str(folder)!r}/history.npz holds no E_total curve.")
    return {k: (ts, v) if ts is not None else v for k, v in curves.items()}


def _draw(folder: pathlib.Path, runs: dict[str, pathlib.Path] | None = None) -> None:
    """Draw the learning curves of the run in `folder`, or of the `runs` of a sweep
    (labelled by run name) together, into `folder/learning_curves.png`."""
    from matplotlib.figure import Figure

    from . import plot

    if runs is None:
        curves = _curves(folder)
    else:
        curves = {
            f"{name} {label}" if label != "E_total" else name: curve
            for name, run in runs.items()
            for label, curve in _curves(run).items()
        }
    timed = any(isinstance(c, tuple) for c in curves.values())
    fig = Figure(figsize=(6, 4))  # no pyplot, so no backend to choose
    ax = fig.subplots()
    plot.learning_curves(
        ax,
        curves,
        xlabel="time $t$" if timed else "updates",
        title=folder.name,
    )
    plot.save(fig, folder / "learning_curves.png")


def _plot(args: argparse.Namespace) -> int:
    folder = pathlib.Path(args.folder)
    if (folder / "sweep.json").exists():
        runs = {
            run.name: check_run_folder(run)
            for run in sorted(folder.iterdir())
            if (run / "config.json").exists()
        }
        if not runs:
            raise ValueError(f"The sweep {str(folder)!r} holds no run folder yet.")
        _draw(folder, runs)
    else:
        _draw(check_run_folder(folder))
    print(f"Wrote {folder / 'learning_curves.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="neurodyn", description="Adaptive dynamical systems: demos and runs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a paper experiment into a run folder")
    demo.add_argument("name", nargs="?", help="the demo to run (see --list)")
    demo.add_argument("--out", help="run folder to write (default runs/NAME)")
    demo.add_argument("--list", action="store_true", help="list the demos")
    demo.add_argument("--small", action="store_true", help="a quick, smaller version")
    demo.set_defaults(handler=_demo)
    train = commands.add_parser("train", help="train a network from a JSON config")
    train.add_argument("--config", required=True, help="JSON file describing the run")
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--resume", action="store_true", help="continue a checkpoint")
    train.add_argument(
        "--processes",
        type=int,
        help="run over this many local processes (jax.distributed, 127.0.0.1)",
    )
    train.set_defaults(handler=_train)
    plot = commands.add_parser("plot", help="re-draw a run folder's figures")
    plot.add_argument("folder")
    plot.set_defaults(handler=_plot)
    args = parser.parse_args(argv)
    return _guarded(
        lambda: args.handler(args), "demos" if args.command == "demo" else "cli"
    )


# What the extras bring (pyproject.toml): the commands' optional dependencies.
_OPTIONAL = ("matplotlib", "rich", "sklearn", "threadpoolctl")


def _guarded(command: Callable[[], int], extra: str = "cli") -> int:
    """Run a command; bad input, a damaged file, a failed write or a missing optional
    dependency (named with the `extra` that installs it) is reported in one line,
    without a traceback."""
    try:
        return command()
    except ModuleNotFoundError as e:
        module = (e.name or "").split(".")[0]
        if module not in _OPTIONAL:
            raise  # a broken installation, not a missing extra
        print(
            f"neurodyn: error: this command needs {module}, which is not "
            f'installed: pip install "neurodyn[{extra}]" (or "neurodyn[all]").',
            file=sys.stderr,
        )
        return 2
    except (ValueError, TypeError, OSError) as e:
        message = " ".join(str(e).split())
        print(f"neurodyn: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurodyn: interrupted; continue with --resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
