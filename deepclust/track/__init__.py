"""Tracking: MLflow runs, artifacts and stage progress lines."""

from deepclust.track.mlflow_run import job_run, resolve_tracking_uri
from deepclust.track.progress import StageTimer

__all__ = ["StageTimer", "job_run", "resolve_tracking_uri"]
