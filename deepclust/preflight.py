"""Check that the services of a job respond, before the job starts.

Without them, an unreachable standalone master costs a minute of
registration retries before Spark gives up with "All masters are
unresponsive". A master without free workers leaves the first stage waiting
with no time limit. An unreachable MLflow tracking server costs minutes of
MLflow's HTTP retries.
"""

from __future__ import annotations

import http.client
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from deepclust.errors import ServiceUnavailableError, invalid

_logger = logging.getLogger(__name__)

# Seconds to wait for a TCP connection or an HTTP response from one service.
CONNECT_TIMEOUT_SECONDS = 10.0

# Spark conf key (seconds) that bounds the wait for the first executor on a
# standalone master. Executors there start within seconds once a worker has
# free cores and memory.
EXECUTOR_WAIT_CONF = "spark.deepclust.executorWaitTimeout"
DEFAULT_EXECUTOR_WAIT_SECONDS = 60.0


def standalone_master_addresses(master: str) -> list[tuple[str, int]]:
    """Parse ``spark://host:port[,host:port...]`` into ``(host, port)`` pairs.

    Returns an empty list for other masters (local, yarn, k8s, ...), which
    this module does not check.

    Raises
    ------
    ServiceUnavailableError
        If a standalone master URL has no host or an invalid port.
    """
    if not master.startswith("spark://"):
        return []
    addresses = []
    for item in master[len("spark://") :].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ServiceUnavailableError(
                f"Invalid Spark master {master!r}: expected spark://HOST:PORT "
                "(several masters separated by commas), e.g. "
                "spark://127.0.0.1:7077. Fix the --master value."
            )
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def submitted_master() -> str:
    """Return the master that spark-submit passed to the JVM, or ``""``."""
    from pyspark import SparkConf, SparkContext

    # Connects to the JVM that spark-submit started. No SparkContext is made.
    SparkContext._ensure_initialized()
    return SparkConf().get("spark.master", "")


def check_spark_master(master: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Check that at least one standalone master accepts a TCP connection.

    Masters other than ``spark://`` pass unchecked.

    Raises
    ------
    ServiceUnavailableError
        If no master of the URL accepts a connection within ``timeout``
        seconds each.
    """
    addresses = standalone_master_addresses(master)
    failures = []
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            failures.append(f"{host}:{port} ({exc})")
    if failures:
        raise ServiceUnavailableError(
            f"Spark master {master!r} is unreachable: no connection to "
            f"{', '.join(failures)}, with a timeout of {timeout:g} s. Start the master "
            "(spark-class org.apache.spark.deploy.master.Master), or fix the "
            "--master host and port."
        )


def wait_for_executors(spark, timeout: float | None = None) -> None:
    """Wait until a standalone master has started at least one executor.

    A master whose workers lack free cores or memory for the requested
    executors never starts one, and Spark then waits forever in the first
    stage. Other masters pass unchecked, because YARN containers and
    Kubernetes pods may take minutes to start. So does dynamic allocation,
    which starts executors only for waiting tasks.

    Raises
    ------
    ServiceUnavailableError
        If no executor registered within ``timeout`` seconds (default: the
        Spark conf ``spark.deepclust.executorWaitTimeout``, else 60).
    """
    sc = spark.sparkContext
    if not sc.master.startswith("spark://"):
        return
    if sc.getConf().get("spark.dynamicAllocation.enabled", "false") == "true":
        # Executors then start only when tasks wait, so none may exist yet.
        return
    if timeout is None:
        timeout = executor_wait_seconds(sc.getConf().get(EXECUTOR_WAIT_CONF))
    deadline = time.monotonic() + timeout
    # The driver is listed among the executors too, so a ready cluster has two.
    while len(sc.statusTracker().getExecutorInfos()) < 2:
        if time.monotonic() > deadline:
            conf = sc.getConf()
            raise ServiceUnavailableError(
                f"No executor started on Spark master {sc.master!r} within "
                f"{timeout:g} s. Check in the master's web UI that workers are "
                "alive with free cores and memory for spark.executor.cores "
                f"({conf.get('spark.executor.cores', 'all')}) and "
                f"spark.executor.memory ({conf.get('spark.executor.memory', '1g')}),"
                f" or raise {EXECUTOR_WAIT_CONF}."
            )
        time.sleep(0.5)


def executor_wait_seconds(value: str | None) -> float:
    """Parse the value of ``spark.deepclust.executorWaitTimeout``.

    Raises
    ------
    InputError
        If the value is not a number of seconds above 0.
    """
    if value is None or not value.strip():
        return DEFAULT_EXECUTOR_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise invalid(
            f"Spark conf {EXECUTOR_WAIT_CONF}",
            value,
            "a number of seconds above 0, e.g. 120",
            f"Fix --conf {EXECUTOR_WAIT_CONF}=SECONDS.",
        )
    return seconds


def check_tracking_server(uri: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Check that an HTTP(S) MLflow tracking server responds to ``GET /health``.

    Other tracking URIs (sqlite, file, databricks) pass unchecked. A 4xx
    response passes with a warning, because an authenticating proxy may
    guard ``/health`` while the API itself works.

    Raises
    ------
    ServiceUnavailableError
        If the server does not respond within ``timeout`` seconds, or responds
        with a 5xx status.
    """
    if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
        return
    health = uri.rstrip("/") + "/health"
    fix = (
        "Start the server (mlflow server --host HOST --port PORT), or fix "
        "MLFLOW_TRACKING_URI or tracking.uri."
    )
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise ServiceUnavailableError(
                f"MLflow tracking server {uri!r} is unavailable: GET {health} "
                f"returned HTTP {exc.code}. {fix}"
            ) from exc
        _logger.warning(
            "mlflow: GET %s returned HTTP %d; continuing, the API may still work",
            health,
            exc.code,
        )
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnavailableError(
            f"MLflow tracking server {uri!r} is unreachable: GET {health} failed "
            f"({reason}), with a timeout of {timeout:g} s. {fix}"
        ) from exc
