"""The `neurodyn` command: `neurodyn demo NAME --out DIR`, `neurodyn demo --list`."""

import argparse
import json
import pathlib
import sys

from ._runs import check_writable, jsonable, staged_folder


def _demo(args: argparse.Namespace) -> int:
    from ._demos import DEMOS

    if args.list or args.name is None:
        for name, run in DEMOS.items():
            summary = (sys.modules[run.__module__].__doc__ or "").splitlines()[0]
            print(f"{name:24s} {summary}")
        return 0
    if args.name not in DEMOS:
        raise ValueError(
            f"Unknown demo {args.name!r}; `neurodyn demo --list` lists: "
            f"{', '.join(DEMOS)}."
        )
    out = check_writable(pathlib.Path(args.out or f"runs/{args.name}"))
    with staged_folder(out) as stage:
        metrics = DEMOS[args.name](stage, small=args.small)
    print(json.dumps(jsonable(metrics), indent=2))
    print(f"Run folder: {out}")
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
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as e:
        print(f"neurodyn: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
