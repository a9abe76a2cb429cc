"""One MLflow run per job, FAILED when the job raises."""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from contextlib import contextmanager

import mlflow
import numpy as np
from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

from deepclust.errors import invalid
from deepclust.preflight import check_tracking_server

_logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(configured: str | None) -> str:
    """Return the tracking URI: the config's, else MLFLOW_TRACKING_URI, else a
    sqlite file ``mlflow.db`` in the working folder.

    A relative sqlite path is made absolute, so processes started elsewhere
    (torchrun, executors) reach the same store.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + os.path.abspath(uri[len(prefix) :])
    return uri


@contextmanager
def job_run(tracking_uri: str, experiment: str, run_name: str | None, tags=None):
    """Start an MLflow run; end it FINISHED, or FAILED if the block raises.

    The error message is stored in the tag ``deepclust.error`` of a failed run.

    Raises
    ------
    ServiceUnavailableError
        Within seconds, if an HTTP tracking server does not respond.
    InputError
        If MLflow has no store for the URI's scheme.
    """
    check_tracking_server(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment(experiment)
    except UnsupportedModelRegistryStoreURIException as exc:
        raise invalid(
            "tracking URI",
            tracking_uri,
            "a URI MLflow supports, such as sqlite:///mlflow.db, "
            "http://HOST:PORT, databricks or a folder path",
            "Fix tracking.uri or MLFLOW_TRACKING_URI.",
        ) from exc
    with mlflow.start_run(run_name=run_name, tags=tags or {}) as run:
        _logger.info(
            "mlflow: run %s in experiment %r at %s",
            run.info.run_id,
            experiment,
            tracking_uri,
        )
        try:
            yield run
        except BaseException as exc:
            mlflow.set_tag("deepclust.error", str(exc)[:5000])
            raise


def log_json(data, artifact_file: str) -> None:
    """Log a JSON-serializable object as a run artifact."""
    mlflow.log_text(json.dumps(data, indent=2, default=_to_builtin), artifact_file)


def log_loss_curve(losses: list[float], artifact_file: str = "loss_curve.png") -> None:
    """Log a PNG of the training loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), dpi=100)
    axis.plot(range(1, len(losses) + 1), losses, marker="." if len(losses) < 50 else "")
    axis.set_xlabel("epoch")
    axis.set_ylabel("reconstruction loss (MSE)")
    axis.set_yscale("log")
    axis.grid(True, alpha=0.3)
    axis.set_title("Autoencoder training loss")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    log_bytes(buffer.getvalue(), artifact_file)


def log_bytes(data: bytes, artifact_file: str) -> None:
    """Log raw bytes as a run artifact."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, os.path.basename(artifact_file))
        with open(path, "wb") as handle:
            handle.write(data)
        directory = os.path.dirname(artifact_file) or None
        mlflow.log_artifact(path, artifact_path=directory)


def _to_builtin(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
