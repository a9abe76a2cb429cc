"""Shared fixtures: one local Spark session and a sqlite MLflow store per test."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from deepclust.cli import build_session

    session = build_session("deepclust-tests", "local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    """A fresh sqlite MLflow store; MLFLOW_TRACKING_URI points at it."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="session")
def digits_table(spark, tmp_path_factory):
    """scikit-learn digits as a canonical feature table."""
    from deepclust.read.prepare import prepare_table

    path = str(tmp_path_factory.mktemp("tables") / "digits")
    prepare_table(spark, "digits", path)
    return path


@pytest.fixture(scope="session")
def iris_table(spark, tmp_path_factory):
    """scikit-learn iris as a canonical feature table."""
    from deepclust.read.prepare import prepare_table

    path = str(tmp_path_factory.mktemp("tables") / "iris")
    prepare_table(spark, "iris", path)
    return path


def write_config(path, **sections):
    """Write a YAML config whose sections are the given dicts."""
    import yaml

    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(sections, handle)
    return str(path)


@pytest.fixture(scope="session")
def trained_iris(spark, iris_table, tmp_path_factory):
    """A tiny iris model trained once, registered, with alias champion.

    Returns a dict: ``tracking_uri``, ``config`` (YAML path), ``model_name``,
    ``run_id`` of the training run and ``assignments`` (its output folder).
    The registered model is shared by the tests, so they must not move its
    aliases.
    """
    from mlflow.tracking import MlflowClient

    from deepclust.registry import CHAMPION
    from pipelines.train import run_training_job

    folder = tmp_path_factory.mktemp("trained")
    tracking_uri = f"sqlite:///{folder}/mlflow.db"
    config = write_config(
        folder / "iris.yaml",
        data={"path": iris_table},
        model={"hidden_dims": [8], "embedding_dim": 2, "scaling": "standard"},
        train={"epochs": 3, "batch_size": 16, "num_processes": 1},
        cluster={"k": 3},
        output={"path": str(folder / "train-out")},
        tracking={"uri": tracking_uri, "experiment": "tests"},
        registry={"model_name": "iris-test"},
        seed=0,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = run_training_job(spark, config)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    client.set_registered_model_alias("iris-test", CHAMPION, 1)
    return {
        "tracking_uri": tracking_uri,
        "config": config,
        "model_name": "iris-test",
        "run_id": result.run_id,
        "assignments": f"{result.output_path}/assignments",
    }
