"""The training job under spark-submit on a real Spark standalone cluster.

A master and two workers (1 core each) run as separate JVMs and an MLflow
tracking server runs with a sqlite backend, all bound to 127.0.0.1. The job
trains in barrier mode, so the DDP ranks run inside the workers' tasks.

The workers get PYTHONPATH pointing at this checkout, so executors and
torchrun ranks import the code under test. In production the package is
installed in the executors' Python environment instead (see deploy/).

Jobs go through ``submit_job``, which runs deploy/standalone/submit.sh; a
step that scores with the trained model submits ``score`` the same way,
after ``run_training_step``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

import deepclust
from tests.conftest import write_config
from tests.services import (
    HOST,
    Process,
    alive_workers,
    free_port,
    http_get,
    port_open,
    spark_bin,
    spark_home,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(deepclust.__file__)))
NUM_WORKERS = 2
STARTUP_TIMEOUT_SECONDS = 90.0
JOB_TIMEOUT_SECONDS = 420.0
# A job that fails in its preflight checks ends within this bound. Most of it
# is the start of the JVM and of Python (torch, MLflow) on a loaded machine.
JOB_START_BOUND_SECONDS = 120.0


def service_env(**extra) -> dict:
    """Return the environment of every process the tests start."""
    env = dict(os.environ)
    env.update(
        SPARK_HOME=spark_home(),
        SPARK_LOCAL_IP=HOST,
        PYSPARK_PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(
            p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p
        ),
        GLOO_SOCKET_IFNAME="lo",
        MLFLOW_DISABLE_TELEMETRY="true",
        SPARK_DAEMON_MEMORY="512m",
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Cluster:
    master_url: str
    master_ui_port: int
    started_seconds: float


@dataclass(frozen=True)
class SubmitResult:
    returncode: int
    output: str
    seconds: float


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    """A standalone master and two workers with 1 core and 1 GiB each."""
    folder = tmp_path_factory.mktemp("cluster")
    env = service_env()
    start = time.monotonic()
    port, ui_port = free_port(), free_port()
    master = Process(
        "spark master",
        [
            spark_bin("spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host", HOST,
            "--port", str(port),
            "--webui-port", str(ui_port),
        ],
        env,
        str(folder / "master.log"),
    )  # fmt: skip
    request.addfinalizer(master.stop)
    master_url = f"spark://{HOST}:{port}"
    wait_until(lambda: port_open(port), 60, "the Spark master port", [master])

    workers = []
    for index in range(NUM_WORKERS):
        worker = Process(
            f"spark worker {index}",
            [
                spark_bin("spark-class"),
                "org.apache.spark.deploy.worker.Worker",
                "--host", HOST,
                "--webui-port", str(free_port()),
                "--cores", "1",
                "--memory", "1g",
                "--work-dir", str(folder / f"worker-{index}"),
                master_url,
            ],
            env,
            str(folder / f"worker-{index}.log"),
        )  # fmt: skip
        request.addfinalizer(worker.stop)
        workers.append(worker)
    wait_until(
        lambda: alive_workers(ui_port) == NUM_WORKERS,
        STARTUP_TIMEOUT_SECONDS,
        f"{NUM_WORKERS} ALIVE workers at {master_url}",
        [master, *workers],
    )
    return Cluster(master_url, ui_port, time.monotonic() - start)


@pytest.fixture(scope="module")
def tracking_server(request, tmp_path_factory):
    """An MLflow tracking server with a sqlite backend; returns its URI."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    server = Process(
        "mlflow server",
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", HOST,
            "--port", str(port),
            "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
            "--artifacts-destination", str(folder / "artifacts"),
        ],
        service_env(),
        str(folder / "server.log"),
    )  # fmt: skip
    request.addfinalizer(server.stop)
    uri = f"http://{HOST}:{port}"
    wait_until(
        lambda: http_get(f"{uri}/health") == b"OK",
        STARTUP_TIMEOUT_SECONDS,
        f"the MLflow server at {uri}",
        [server],
    )
    return uri


def submit_job(master_url: str, job: str, args: list[str], env=None, conf=None):
    """Submit a job with deploy/standalone/submit.sh and wait for it.

    ``job`` is ``train`` or ``score``; ``args`` are the job's own arguments.
    Returns a SubmitResult with the exit status, the merged stdout and
    stderr, and the wall seconds.
    """
    settings = {
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        "spark.ui.port": str(free_port()),
        "spark.sql.shuffle.partitions": "4",
        **(conf or {}),
    }
    script_env = {
        "SPARK_MASTER": master_url,
        "DEEPCLUST_PYTHON": sys.executable,
        "DRIVER_MEMORY": "1g",
        "EXECUTOR_MEMORY": "768m",
        "EXECUTOR_CORES": "1",
        "NUM_EXECUTORS": str(NUM_WORKERS),
        "EXTRA_CONF": " ".join(f"{key}={value}" for key, value in settings.items()),
        **(env or {}),
    }
    command = [os.path.join(REPO_ROOT, "deploy", "standalone", "submit.sh"), job]
    start = time.monotonic()
    completed = subprocess.run(
        [*command, *args],
        env=service_env(**script_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=JOB_TIMEOUT_SECONDS,
        check=False,
    )
    return SubmitResult(
        completed.returncode, completed.stdout, time.monotonic() - start
    )


def run_training_step(cluster, tracking_uri, table, folder, **train) -> SubmitResult:
    """Submit the training job in barrier mode on digits, tracked on the server.

    The submit script sets train.local_mode=false and train.num_processes to
    its executor count.
    """
    config = write_config(
        folder / "train.yaml",
        data={"path": table, "image_shape": [1, 8, 8]},
        model={"hidden_dims": [64, 32], "embedding_dim": 8},
        train={"epochs": 4, "batch_size": 64, **train},
        cluster={"k": 10},
        output={"path": str(folder / "out")},
        tracking={"experiment": "cluster", "run_name": "barrier"},
        registry={"model_name": "cluster-digits"},
        seed=0,
    )
    return submit_job(
        cluster.master_url,
        "train",
        ["--config", config],
        env={"MLFLOW_TRACKING_URI": tracking_uri},
    )


def run_scoring_step(cluster, tracking_uri, table, folder, run_date) -> SubmitResult:
    """Submit the scoring job with the registered candidate version."""
    return submit_job(
        cluster.master_url,
        "score",
        [
            "--config",
            str(folder / "train.yaml"),
            "--input",
            table,
            "--output",
            str(folder / "scores"),
            "--date",
            run_date,
            "--model-uri",
            "models:/cluster-digits@candidate",
        ],
        env={"MLFLOW_TRACKING_URI": tracking_uri},
    )


def test_training_job_on_cluster(
    cluster, tracking_server, digits_table, tmp_path, record_property
):
    record_property("cluster_start_seconds", round(cluster.started_seconds, 1))
    result = run_training_step(cluster, tracking_server, digits_table, tmp_path)
    record_property("train_job_seconds", round(result.seconds, 1))
    assert result.returncode == 0, result.output[-6000:]
    stage_lines = [
        line
        for line in result.output.splitlines()
        if line.strip().startswith("seconds")
    ]
    record_property("train_job_stages", stage_lines[-1].strip())

    # Outputs: every digit embedded and assigned once, ten centroids.
    out = tmp_path / "out"
    embeddings = pq.read_table(out / "embeddings")
    assignments = pq.read_table(out / "assignments")
    centroids = pq.read_table(out / "centroids")
    assert embeddings.num_rows == 1797
    assert len(set(assignments.column("id").to_pylist())) == 1797
    assert set(assignments.column_names) == {"id", "cluster", "distance"}
    assert centroids.num_rows == 10
    assert sum(centroids.column("size").to_pylist()) == 1797
    assert all(len(row) == 8 for row in embeddings.column("embedding").to_pylist())

    # The run on the tracking server.
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("cluster")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "barrier"
    assert run.data.params["train.local_mode"] == "False"
    assert run.data.params["train.num_processes"] == str(NUM_WORKERS)
    assert run.data.tags["deepclust.backend"] == "gloo"
    assert run.data.metrics["rows"] == 1797
    assert 0.0 <= run.data.metrics["nmi"] <= 1.0
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in losses] == [1, 2, 3, 4]
    model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert model_files == {"model/autoencoder.pt", "model/spec.json"}
    assert f"run {run.info.run_id}" in result.output

    # The registered version, scored through spark-submit on the same cluster.
    version = client.get_model_version_by_alias("cluster-digits", "candidate")
    assert version.run_id == run.info.run_id
    scored = run_scoring_step(
        cluster, tracking_server, digits_table, tmp_path, "2026-01-31"
    )
    record_property("score_job_seconds", round(scored.seconds, 1))
    assert scored.returncode == 0, scored.output[-6000:]
    partition = tmp_path / "scores" / "date=2026-01-31"
    scores = pq.read_table(partition).to_pydict()
    assert len(scores["id"]) == 1797
    trained = dict(
        zip(
            assignments.column("id").to_pylist(),
            assignments.column("cluster").to_pylist(),
            strict=True,
        )
    )
    assert all(
        trained[row_id] == cluster_id
        for row_id, cluster_id in zip(scores["id"], scores["cluster"], strict=True)
    )
    score_runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`deepclust.job` = 'score'"
    )
    assert len(score_runs) == 1
    assert score_runs[0].info.status == "FINISHED"


def test_unreachable_master_fails_fast(tmp_path):
    master_url = f"spark://{HOST}:{free_port()}"
    config = write_config(
        tmp_path / "job.yaml",
        data={"path": str(tmp_path)},
        output={"path": str(tmp_path / "out")},
    )
    result = submit_job(master_url, "train", ["--config", config])

    assert result.returncode == 2, result.output[-3000:]
    assert f"Spark master '{master_url}' is unreachable" in result.output
    assert "Start the master" in result.output
    # Spark alone gives up after about 90 s with an unrelated message. The
    # bound leaves room for JVM and Python start-up on a busy machine.
    assert result.seconds < JOB_START_BOUND_SECONDS


def test_no_free_worker_fails_fast(cluster, tmp_path):
    config = write_config(
        tmp_path / "job.yaml",
        data={"path": str(tmp_path)},
        output={"path": str(tmp_path / "out")},
    )
    result = submit_job(
        cluster.master_url,
        "train",
        ["--config", config],
        # No 1 GiB worker can start a 4 GiB executor.
        env={"EXECUTOR_MEMORY": "4g", "EXECUTOR_WAIT_SECONDS": "5"},
    )

    assert result.returncode == 2, result.output[-3000:]
    assert "No executor started on Spark master" in result.output
    assert "spark.executor.memory (4g)" in result.output
    assert result.seconds < JOB_START_BOUND_SECONDS


def test_unreachable_tracking_server_fails_fast(cluster, digits_table, tmp_path):
    uri = f"http://{HOST}:{free_port()}"
    config = write_config(tmp_path / "job.yaml", data={"path": digits_table})
    result = submit_job(
        cluster.master_url,
        "train",
        ["--config", config],
        env={"MLFLOW_TRACKING_URI": uri},
    )

    assert result.returncode == 2, result.output[-3000:]
    assert f"MLflow tracking server '{uri}' is unreachable" in result.output
    assert "MLFLOW_TRACKING_URI" in result.output
    assert result.seconds < JOB_START_BOUND_SECONDS
