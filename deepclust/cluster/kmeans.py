"""Distributed KMeans on embeddings with Spark MLlib."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
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
    with the lowest inertia. The embeddings become MLlib vectors once, are
    kept in executor memory for all runs and are released at the end. Only the
    centroids reach the driver.

    Parameters
    ----------
    embeddings : DataFrame
        Column ``embedding`` (array<float> or array<double>, equal lengths).
    rows : int
        Row count of ``embeddings``, to check ``settings.k`` against.

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
    vectors = persisted_vectors(embeddings, "embedding")
    try:
        best = None
        for run in range(settings.n_init):
            model = mllib_kmeans(embeddings.sparkSession, settings, seed + run).run(
                vectors
            )
            inertia = float(model.trainingCost())
            _logger.info(
                "cluster: run %d/%d seed %d inertia %.6g after %d iterations",
                run + 1,
                settings.n_init,
                seed + run,
                inertia,
                model.numIter(),
            )
            if best is None or inertia < best.inertia:
                best = ClusterResult(
                    centroids=np.array(
                        [list(c.toArray()) for c in model.clusterCenters()],
                        dtype=np.float64,
                    ),
                    inertia=inertia,
                    iterations=int(model.numIter()),
                    seed=seed + run,
                )
    finally:
        vectors.unpersist(False)
    return best


def persisted_vectors(df: DataFrame, column: str):
    """Return ``column`` as a persisted JVM ``RDD[mllib.linalg.Vector]``.

    The ``pyspark.ml`` KMeans converts its input column again in every pass
    over it unless it caches the conversion itself, and then it caches anew
    for each fit, so each restart paid for reading and converting the
    embeddings. The RDD-based MLlib KMeans reads this RDD instead, converted
    and stored once (memory, then disk).

    NOTE: ``DatasetUtils.columnToOldVector`` is internal to Spark
    (``private[spark]``, present from 3.1 to 4.3); the KMeans tests fail if
    a Spark upgrade removes it.
    """
    jvm = df.sparkSession.sparkContext._jvm
    vectors = jvm.org.apache.spark.ml.util.DatasetUtils.columnToOldVector(
        df._jdf, column
    )
    vectors.persist(jvm.org.apache.spark.storage.StorageLevel.MEMORY_AND_DISK())
    return vectors


def mllib_kmeans(spark, settings: ClusterConfig, seed: int):
    """Return a JVM ``org.apache.spark.mllib.clustering.KMeans`` for ``settings``.

    Same algorithm and parameters as ``pyspark.ml.clustering.KMeans``:
    k-means|| initialisation with ``init_steps`` steps, then Lloyd iterations
    until every centroid moves less than ``tol`` or ``max_iter`` is reached.
    """
    jvm = spark.sparkContext._jvm
    return (
        jvm.org.apache.spark.mllib.clustering.KMeans()
        .setK(settings.k)
        .setMaxIterations(settings.max_iter)
        .setEpsilon(settings.tol)
        .setInitializationMode("k-means||")
        .setInitializationSteps(settings.init_steps)
        .setSeed(seed)
    )


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
