"""The `neurodyn` command.

- `neurodyn demo NAME --out DIR`, `neurodyn demo --list`: paper experiments.
- `neurodyn train --config FILE --out DIR [--resume]`: a training run from JSON.
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
    sys.exit(_guarded(lambda: _run_demo(name, run, args.out, args.small)))


def _train(args: argparse.Namespace) -> int:
    from ._config import build, check_same_run, load_config
    from ._learning.train import train

    config = load_config(pathlib.Path(args.config))
    out = check_writable(pathlib.Path(args.out))
    checkpoints = out / "checkpoint"
    if checkpoints.exists() and not args.resume:
        raise ValueError(
            f"{str(out)!r} already holds a run; pass --resume to continue it or "
            "choose another --out."
        )
    if args.resume and (out / "config.json").exists():
        check_same_run(load_config(out / "config.json"), config, out)
    model, I, T, kwargs = build(config)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config)
    result = train(
        model, I, T, checkpoint_dir=checkpoints, resume=args.resume, **kwargs
    )
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
    return 0


def _draw(folder: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    from . import plot

    history = read_npz(folder / "history.npz")
    curves = {
        k.removeprefix("E_total").strip("_") or "E_total": v
        for k, v in history.items()
        if k.startswith("E_total")
    }
    ts = history.get("ts")
    if not curves:
        raise ValueError(f"{str(folder)!r}/history.npz holds no E_total curve.")
    fig, ax = plt.subplots(figsize=(6, 4))
    plot.learning_curves(
        ax,
        {k: (ts, v) if ts is not None else v for k, v in curves.items()},
        xlabel="time $t$" if ts is not None else "updates",
        title=folder.name,
    )
    plot.save(fig, folder / "learning_curves.png")


def _plot(args: argparse.Namespace) -> int:
    folder = check_run_folder(pathlib.Path(args.folder))
    _draw(folder)
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
    train.set_defaults(handler=_train)
    plot = commands.add_parser("plot", help="re-draw a run folder's figures")
    plot.add_argument("folder")
    plot.set_defaults(handler=_plot)
    args = parser.parse_args(argv)
    return _guarded(lambda: args.handler(args))


def _guarded(command: Callable[[], int]) -> int:
    """Run a command; bad input, a damaged file or a failed write is reported in one
    line, without a traceback."""
    try:
        return command()
    except (ValueError, TypeError, OSError) as e:
        message = " ".join(str(e).split())
        print(f"neurodyn: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurodyn: interrupted; continue with --resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
