"""One run over several JAX processes (`jax.distributed`), or a sweep spread over them.

- `python -m neurodyn.launch --processes K COMMAND...` (what `neurodyn train
  --processes K` calls) starts K processes on this machine, the coordinator on
  127.0.0.1, and waits for them; if one fails, the others are stopped.
- `python -m neurodyn.launch COMMAND...` joins a multi-process run: under SLURM or
  Open MPI, JAX finds the coordinator, the process count and this process's id by
  itself; elsewhere give them with `--coordinator HOST:PORT --num-processes K
  --process-id I` (or `JAX_COORDINATOR_ADDRESS` for the first).

COMMAND is a `neurodyn` command line, e.g. `train --config F --out D`. Every process
runs it; `jax.devices()` then lists the devices of all processes, and
`neurodyn.shard_patterns` splits the patterns over all of them.
"""

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence


# At exit a process waits for every other to finish (JAX's shutdown barrier; it
# aborts after JAX's default of 300 s). The processes of a sweep finish their shares
# of runs at different times: let the early ones wait as long as a sweep may last.
_SHUTDOWN_WAIT_SECONDS = 7 * 24 * 3600


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A free TCP port on 127.0.0.1 for the local coordinator, held until the block
    ends: by a socket bound (not listening) with `SO_REUSEPORT`. The coordinator's
    gRPC server sets `SO_REUSEPORT` too, so it binds the port beside this socket,
    while no other program is handed the port in the meantime (as it could be if
    the port were released between being found free and being bound again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _stop(children: Sequence[subprocess.Popen]) -> None:
    """Kill every child still running and reap it. SIGKILL, because a process in
    `jax.distributed` treats SIGTERM as a preemption notice and carries on; every
    file neurodyn writes is replaced atomically, so a kill leaves no torn file."""
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()


def spawn(
    command: Sequence[str],
    processes: int,
    *,
    timeout: float | int | None = None,
    program: Sequence[str] = ("-m", "neurodyn.launch"),
) -> int:
    """Run the `neurodyn` command line `command` in `processes` local processes joined
    by `jax.distributed` (coordinator on 127.0.0.1), and wait for them.

    Each process runs `python PROGRAM --coordinator A --num-processes K
    --process-id I COMMAND...`; `program` (default this module) may name another
    script that takes these options, e.g. a benchmark.

    Returns 0 if every process succeeded, else the exit code of one that failed
    (the lowest process id among those seen failing). The processes are always
    stopped on the way out: on a failure, on Ctrl-C, or after `timeout` seconds
    (exit code 124).
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"`--processes` must be a positive integer, got {processes}.")
    children = []
    with reserved_port() as port:
        try:
            for rank in range(processes):
                children.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            *program,
                            "--coordinator",
                            f"127.0.0.1:{port}",
                            "--num-processes",
                            str(processes),
                            "--process-id",
                            str(rank),
                            *command,
                        ]
                    )
                )
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                codes = [child.poll() for child in children]
                failed = [code for code in codes if code not in (None, 0)]
                if failed:
                    return failed[0]
                if all(code == 0 for code in codes):
                    return 0
                if deadline is not None and time.monotonic() > deadline:
                    print(
                        f"neurodyn: error: the {processes} processes did not finish "
                        f"within {timeout:g} s; stopped them.",
                        file=sys.stderr,
                    )
                    return 124
                time.sleep(0.05)
        finally:
            _stop(children)


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join the multi-process run: `jax.distributed.initialize`, before any other
    JAX call. Arguments left None are found by JAX (SLURM, Open MPI, or
    `JAX_COORDINATOR_ADDRESS`). CPU devices talk over gloo (JAX's default CPU
    collectives). A process that is done waits at exit for the others (up to a
    week), since a sweep's processes finish at different times."""
    import jax

    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        shutdown_timeout_seconds=_SHUTDOWN_WAIT_SECONDS,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neurodyn.launch",
        description="Run a neurodyn command over several JAX processes.",
    )
    parser.add_argument(
        "--processes",
        type=int,
        help="start this many local processes (coordinator on 127.0.0.1)",
    )
    parser.add_argument("--coordinator", help="HOST:PORT of process 0's coordinator")
    parser.add_argument("--num-processes", type=int, help="the number of processes")
    parser.add_argument("--process-id", type=int, help="this process's id, 0..K-1")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="a neurodyn command")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("give a neurodyn command to run, e.g. `train --config F --out D`")
    if args.processes is not None:
        joins = (args.coordinator, args.num_processes, args.process_id)
        if any(option is not None for option in joins):
            parser.error(
                "give --processes, or --coordinator/--num-processes/--process-id, "
                "not both"
            )
        try:
            return spawn(args.command, args.processes)
        except ValueError as e:
            print(f"neurodyn: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("neurodyn: interrupted; continue with --resume.", file=sys.stderr)
            return 130
    initialize(args.coordinator, args.num_processes, args.process_id)
    from .cli import main as neurodyn

    return neurodyn(args.command)


if __name__ == "__main__":
    sys.exit(main())
