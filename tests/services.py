"""Start, poll and stop the server processes of the cluster tests.

Every process starts in its own process group, so stopping the group also ends
the JVMs, executors, Python workers and torchrun ranks it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pyspark

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def spark_home() -> str:
    """Return the Spark home of the installed pyspark package."""
    return os.path.dirname(pyspark.__file__)


def spark_bin(name: str) -> str:
    """Return the path of ``bin/NAME`` (spark-class, spark-submit) of pyspark."""
    return os.path.join(spark_home(), "bin", name)


class Process:
    """One started server process, with its log file."""

    def __init__(self, name: str, args: list[str], env: dict, log_path: str):
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                args,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check_running(self) -> None:
        """Raise with the end of the log if the process has exited."""
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(
                f"{self.name} exited with status {code}; end of {self.log_path}:\n"
                f"{self.log_tail()}"
            )

    def log_tail(self, chars: int = 3000) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()[-chars:]

    def stop(self, timeout: float = 20.0) -> None:
        """End the process group, and descendants that left it, by PID.

        SIGTERM first, SIGKILL after ``timeout``. torchrun starts its ranks in
        new sessions, so they are found through their parent PIDs instead.
        """
        descendants = descendant_processes(self.popen.pid)
        pgid = self.popen.pid  # start_new_session makes it the group leader
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid, start_time in descendants:
            # The start time guards against a PID reused since the scan.
            if process_start_time(pid) == start_time:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.popen.wait(timeout=timeout)


def _stat_fields(pid: int) -> list[str] | None:
    """Return the fields of ``/proc/PID/stat`` after the command name."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            # The command name in brackets may contain spaces.
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start_time(pid: int) -> str | None:
    """Return the start time of a process in clock ticks, or None if gone."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def descendant_processes(pid: int) -> list[tuple[int, str]]:
    """Return ``(pid, start time)`` of every process below ``pid`` (Linux)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat_fields(int(entry)) if entry.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child[0])
    return found


def wait_until(check, timeout: float, what: str, processes=(), interval=0.5):
    """Call ``check()`` until it returns a true value, or raise after ``timeout``.

    ``processes`` are checked on each round, so a server that died fails at
    once with its log instead of at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        for process in processes:
            process.check_running()
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}:\n{p.log_tail()}" for p in processes)
            raise TimeoutError(
                f"Timed out after {timeout:g} s waiting for {what}.\n{logs}"
            )
        time.sleep(interval)


def port_open(port: int) -> bool:
    """Return True if 127.0.0.1:port accepts a TCP connection."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def http_get(url: str, timeout: float = 2.0) -> bytes | None:
    """Return the body of a 200 response, or None on any failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (OSError, urllib.error.URLError):
        return None


def alive_workers(master_ui_port: int) -> int:
    """Return the number of ALIVE workers listed by the master's web UI."""
    body = http_get(f"http://{HOST}:{master_ui_port}/json/")
    if body is None:
        return 0
    workers = json.loads(body).get("workers", [])
    return sum(1 for worker in workers if worker.get("state") == "ALIVE")
