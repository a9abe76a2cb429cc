"""Distributed KMeans on embeddings with Spark MLlib."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.ml.clustering import KMeans
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from deepclust.config import ClusterConfig
from deepclust.errors import InputError
from deepclust.read.shards import list_column_to_numpy

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterResult:
    """A fitted KMeans.

    Attributes
    ----------
    centroids : ndarray of shape (k, embedding_dim), float64
    inertia : float
        Sum of squared distances of rows to their centroid.
    iterations : int
        Lloyd iterations of the chosen run.
    seed : int
        Seed of the chosen run (``cluster.n_init`` runs use seed, seed+1, ...).
    """

    centroids: np.ndarray
    inertia: float
    iterations: int
    seed: int


def fit_kmeans(
    embeddings: DataFrame, settings: ClusterConfig, seed: int, rows: int
) -> ClusterResult:
    """Fit MLlib KMeans (k-means|| initialisation) on ``embedding``.

    Runs ``settings.n_init`` times with consecutive seeds and keeps the run
    with the lowest inertia. Only the centroids reach the driver.

    Raises
    ------
    InputError
        If ``k`` exceeds the number of rows.
    """
    if settings.k > rows:
        raise InputError(
            f"Invalid cluster.k: expected at most the number of rows ({rows}), "
            f"got {settings.k}. Lower cluster.k or use a larger table."
        )
    vectors = embeddings.select(array_to_vector("embedding").alias("vector")).cache()
    try:
        best = None
        for run in range(settings.n_init):
            kmeans = KMeans(
                k=settings.k,
                maxIter=settings.max_iter,
                tol=settings.tol,
                initMode="k-means||",
                initSteps=settings.init_steps,
                seed=seed + run,
                featuresCol="vector",
            )
            model = kmeans.fit(vectors)
            summary = model.summary
            _logger.info(
                "cluster: run %d/%d seed %d inertia %.6g after %d iterations",
                run + 1,
                settings.n_init,
                seed + run,
                summary.trainingCost,
                summary.numIter,
            )
            if best is None or summary.trainingCost < best.inertia:
                best = ClusterResult(
                    centroids=np.array(model.clusterCenters(), dtype=np.float64),
                    inertia=float(summary.trainingCost),
                    iterations=int(summary.numIter),
                    seed=seed + run,
                )
    finally:
        vectors.unpersist()
    return best


def assign_clusters(embeddings: DataFrame, centroids: np.ndarray) -> DataFrame:
    """Assign each row to its nearest centroid, in batches with ``mapInArrow``.

    The same function serves training and scoring, so a row gets the same
    cluster from both.

    Returns
    -------
    DataFrame
        ``id``, ``cluster`` (int, 0-based) and ``distance`` (double, Euclidean
        distance to the centroid of ``cluster``).
    """
    id_field = embeddings.schema["id"]
    schema = T.StructType(
        [
            T.StructField("id", id_field.dataType, id_field.nullable),
            T.StructField("cluster", T.IntegerType(), False),
            T.StructField("distance", T.DoubleType(), False),
        ]
    )
    broadcast = embeddings.sparkSession.sparkContext.broadcast(
        np.asarray(centroids, dtype=np.float64)
    )
    assign = functools.partial(assign_batches, broadcast=broadcast)
    return embeddings.select("id", "embedding").mapInArrow(assign, schema)


def assign_batches(batches: Iterator[pa.RecordBatch], broadcast):
    """Yield ``id``, ``cluster``, ``distance`` batches for ``id``, ``embedding``."""
    centroids = broadcast.value
    squared_norms = (centroids**2).sum(axis=1)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        points = list_column_to_numpy(batch.column(1))
        cluster, distance = nearest_centroids(points, centroids, squared_norms)
        yield pa.RecordBatch.from_arrays(
            [batch.column(0), pa.array(cluster), pa.array(distance)],
            names=["id", "cluster", "distance"],
        )


def nearest_centroids(
    points: np.ndarray, centroids: np.ndarray, squared_norms: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Find the nearest centroid of each point.

    Parameters
    ----------
    points : ndarray of shape (n, embedding_dim)
        Embeddings; computed in float64 whatever their dtype.
    centroids : ndarray of shape (k, embedding_dim), float64
    squared_norms : ndarray of shape (k,), optional
        ``(centroids**2).sum(axis=1)``, passed by callers that reuse it.

    Returns
    -------
    cluster : ndarray of shape (n,), int32
        0-based index of the nearest centroid; ties go to the lower index.
    distance : ndarray of shape (n,), float64
        Euclidean distance to that centroid.
    """
    points = np.asarray(points, dtype=np.float64)
    if squared_norms is None:
        squared_norms = (centroids**2).sum(axis=1)
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, clipped at 0 against rounding.
    squared = (
        (points**2).sum(axis=1, keepdims=True)
        - 2.0 * points @ centroids.T
        + squared_norms[None, :]
    )
    cluster = squared.argmin(axis=1)
    nearest = np.maximum(squared[np.arange(len(points)), cluster], 0.0)
    return cluster.astype(np.int32), np.sqrt(nearest)
