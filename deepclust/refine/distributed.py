"""Driver side of refinement: start the ranks and collect the refined model."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from pyspark.sql import SparkSession

from deepclust.config import RefineConfig, TrainConfig
from deepclust.models.base import ModelSpec, load_autoencoder
from deepclust.refine.worker import refine_on_rank
from deepclust.train.distributed import pyarrow_uri, run_ranks

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineResult:
    """Outcome of refinement.

    Attributes
    ----------
    model : Autoencoder
        Refined model on the CPU, in eval mode.
    weights : bytes
        Its state dict, as saved by ``torch.save``.
    centroids : ndarray of shape (k, embedding_dim)
        Refined centroids, in the space of ``model.embed``.
    history : list of dict
        One entry per target refresh: ``batch``, ``changed`` (share of rows
        whose cluster changed since the previous refresh, None for the first),
        the mean ``kl``, ``reconstruction`` and ``balance`` losses since the
        previous refresh, ``sizes``, ``smallest``, ``largest`` and the
        ``starving`` clusters.
    batches : int
        Optimizer steps taken.
    stopped : str
        ``"tolerance"`` or ``"max_epochs"``.
    seconds : float
        Time spent in the refinement loop on one rank.
    """

    model: object
    weights: bytes
    centroids: np.ndarray
    history: list
    batches: int
    stopped: str
    seconds: float


def refine_clusters(
    spark: SparkSession,
    snapshot_path: str,
    spec: ModelSpec,
    weights: bytes,
    centroids: np.ndarray,
    train_settings: TrainConfig,
    settings: RefineConfig,
    seed: int,
    error_dir: str,
    image_shape: tuple | None = None,
) -> RefineResult:
    """Refine a trained autoencoder and its KMeans centroids with IDEC.

    Runs on the same ranks, devices and augmentation as training
    (``train_settings``) and reads the same snapshot.

    Raises
    ------
    TrainingError
        With the real error of the first failed rank.
    """
    request = {
        "shards": pyarrow_uri(snapshot_path),
        "spec": spec.to_json(),
        "weights": weights,
        "centroids": np.asarray(centroids, dtype=np.float64).tolist(),
        "settings": dataclasses.asdict(train_settings),
        "refine": dataclasses.asdict(settings),
        "image_shape": tuple(image_shape) if image_shape else None,
        "seed": seed,
        "error_dir": pyarrow_uri(error_dir),
    }
    _logger.info(
        "refine: %s on %d process(es), refresh every %d batches, at most %d epochs",
        settings.method,
        train_settings.num_processes,
        settings.update_interval,
        settings.max_epochs,
    )
    output = run_ranks(
        spark, train_settings, refine_on_rank, request, stage="Refinement"
    )
    return RefineResult(
        model=load_autoencoder(spec, output["weights"]),
        weights=output["weights"],
        centroids=np.asarray(output["centroids"], dtype=np.float64),
        history=list(output["history"]),
        batches=int(output["batches"]),
        stopped=output["stopped"],
        seconds=float(output["seconds"]),
    )
