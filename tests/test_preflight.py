"""Preflight checks against real sockets and HTTP servers on 127.0.0.1."""

import http.server
import socket
import threading
import time

import pytest

from deepclust.errors import InputError, ServiceUnavailableError
from deepclust.preflight import (
    DEFAULT_EXECUTOR_WAIT_SECONDS,
    check_spark_master,
    check_tracking_server,
    executor_wait_seconds,
    standalone_master_addresses,
)
from tests.services import free_port


@pytest.fixture
def http_status_server():
    """Start an HTTP server on 127.0.0.1 that responds to every GET with a status.

    Yields a function that sets the status and returns the server's URI.
    """
    state = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state["status"])
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(status):
        state["status"] = status
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    server.shutdown()
    server.server_close()


def test_master_addresses_parse_ha_list():
    addresses = standalone_master_addresses("spark://a:7077,b:7078")
    assert addresses == [("a", 7077), ("b", 7078)]


@pytest.mark.parametrize("master", ["local[2]", "yarn", "k8s://https://h:6443"])
def test_other_masters_pass_unchecked(master):
    assert standalone_master_addresses(master) == []
    check_spark_master(master)


def test_master_without_port_rejected():
    with pytest.raises(ServiceUnavailableError, match=r"expected spark://HOST:PORT"):
        check_spark_master("spark://127.0.0.1")


def test_unreachable_master_fails_in_seconds():
    master = f"spark://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as raised:
        check_spark_master(master)
    assert time.monotonic() - start < 5
    message = str(raised.value)
    assert f"Spark master '{master}' is unreachable" in message
    assert "Connection refused" in message
    assert "fix the --master host and port" in message


def test_listening_master_passes():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        check_spark_master(f"spark://127.0.0.1:{free_port()},127.0.0.1:{port}")


def test_executor_wait_parses_seconds():
    assert executor_wait_seconds(None) == DEFAULT_EXECUTOR_WAIT_SECONDS
    assert executor_wait_seconds(" ") == DEFAULT_EXECUTOR_WAIT_SECONDS
    assert executor_wait_seconds("2.5") == 2.5


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_executor_wait_rejects_bad_value(value):
    message = (
        r"Invalid Spark conf spark.deepclust.executorWaitTimeout: expected a "
        rf"number of seconds above 0, e.g. 120, got '{value}'"
    )
    with pytest.raises(InputError, match=message):
        executor_wait_seconds(value)


def test_unreachable_tracking_server_fails_in_seconds():
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as raised:
        check_tracking_server(uri)
    assert time.monotonic() - start < 5
    message = str(raised.value)
    assert f"MLflow tracking server '{uri}' is unreachable" in message
    assert f"GET {uri}/health failed" in message
    assert "fix MLFLOW_TRACKING_URI or tracking.uri" in message


def test_silent_tracking_server_times_out():
    # A socket that accepts connections but never responds.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="timeout of 1 s"):
            check_tracking_server(uri, timeout=1.0)
        assert time.monotonic() - start < 5


def test_tracking_server_error_status_rejected(http_status_server):
    uri = http_status_server(503)
    with pytest.raises(ServiceUnavailableError, match="returned HTTP 503"):
        check_tracking_server(uri)


def test_tracking_server_client_error_passes(http_status_server, caplog):
    uri = http_status_server(401)
    check_tracking_server(uri)
    assert "returned HTTP 401" in caplog.text


def test_healthy_tracking_server_passes(http_status_server):
    check_tracking_server(http_status_server(200) + "/")


@pytest.mark.parametrize("uri", ["sqlite:///x.db", "file:///tmp/mlruns", "databricks"])
def test_local_tracking_uris_pass_unchecked(uri):
    check_tracking_server(uri)
