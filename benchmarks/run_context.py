"""Context every benchmark prints beside its figures: command, machine, versions."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("torch", "pyspark", "pyarrow", "numpy", "scikit-learn", "mlflow")


def describe_machine() -> str:
    """Return cores, memory and CPU model of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {cpu}"


def describe_versions() -> str:
    """Return Python and the versions of the packages the benchmarks compare."""
    found = [f"Python {platform.python_version()}"]
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages, e.g. ``'0.52 1.10 2.03'``.

    Other work on the same cores inflates every time; record this next to
    each figure.
    """
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def print_context() -> None:
    """Print the command line, machine and versions of this benchmark run."""
    command = " ".join(shlex.quote(arg) for arg in sys.argv)
    print(f"command: python {command}")
    print(f"machine: {describe_machine()}")
    print(f"versions: {describe_versions()}", flush=True)
