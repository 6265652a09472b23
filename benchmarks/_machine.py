"""What machine a benchmark ran on: one line for the head of every table."""

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import jax


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other processes share the cores)."""
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def versions(packages: list[str]) -> str:
    """`name version` of each installed package, `name missing` otherwise."""
    out = []
    for name in packages:
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} missing")
    return ", ".join(out)


def machine(packages: list[str]) -> str:
    """CPU, cores, JAX device, Python and the given packages' versions."""
    device = jax.devices()[0]
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {device.platform.upper()} device "
        f"`{device.device_kind}`; Python {platform.python_version()}, "
        f"{versions(packages)}"
    )
