"""Distributed KMeans on embeddings with Spark MLlib."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.mllib.common import _java2py, _py2java
from pyspark.mllib.linalg import DenseVector
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.exceptions import ConvergenceWarning

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
    """Fit MLlib KMeans on ``embedding``.

    Runs ``settings.n_init`` times with consecutive seeds and keeps the run
    with the lowest inertia. The embeddings become MLlib vectors once, are
    kept in executor memory for all runs and are released at the end. Only the
    centroids and, with ``init_mode="k-means++"``, a sample of
    ``init_sample`` rows reach the driver.

    With ``init_mode="k-means++"`` each run starts from the centroids of
    scikit-learn's KMeans (greedy k-means++, then Lloyd) on the sample, and
    MLlib's Lloyd iterations over all rows take over from there. Seeding
    from the sample costs one pass over the rows, against about six for
    k-means|| with two steps, and a good start also needs fewer of the
    distributed Lloyd iterations.

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
    spark = embeddings.sparkSession
    vectors = persisted_vectors(embeddings, "embedding")
    try:
        sample = None
        if settings.init_mode == "k-means++":
            sample = sample_rows(spark, vectors, rows, settings, seed)
        best = None
        for run in range(settings.n_init):
            kmeans = mllib_kmeans(spark, settings, seed + run)
            if sample is not None:
                start = sample_centroids(sample, settings, seed + run)
                kmeans.setInitialModel(jvm_kmeans_model(spark, start))
            model = kmeans.run(vectors)
            found = len(model.clusterCenters())
            if found < settings.k:
                # k-means|| keeps only distinct candidates, so it can return
                # fewer centroids than k when rows repeat.
                _logger.warning(
                    "cluster: run %d found %d distinct centroids, fewer than "
                    "cluster.k=%d, because the embeddings have fewer distinct "
                    "values than k. Lower cluster.k, or use cluster.init_mode "
                    "k-means++, which keeps k centroids and leaves the extra "
                    "ones empty",
                    run + 1,
                    found,
                    settings.k,
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


def sample_rows(
    spark: SparkSession, vectors, rows: int, settings: ClusterConfig, seed: int
) -> np.ndarray:
    """Return about ``settings.init_sample`` rows of ``vectors`` on the driver.

    The sample is drawn in the first pass over ``vectors``, the one that also
    converts and stores them, so it adds little to that pass. It has at
    least 20 rows per cluster, or every row of a smaller table.

    NOTE: the rows cross from the JVM as a pickle of MLlib vectors, through
    ``pyspark.mllib.common``'s converters, which the Python MLlib API itself
    uses.
    """
    sample_size = max(settings.init_sample, 20 * settings.k)
    fraction = sample_size / rows
    picked = vectors if fraction >= 1.0 else vectors.sample(False, fraction, seed)
    sample = _collect_vectors(spark, picked)
    if len(sample) < settings.k:
        # A small fraction can draw fewer than k rows, so take every row.
        sample = _collect_vectors(spark, vectors)
    return sample


def _collect_vectors(spark: SparkSession, vectors) -> np.ndarray:
    picked = _java2py(spark.sparkContext, vectors.collect())
    return np.array([v.toArray() for v in picked], dtype=np.float64)


def sample_centroids(sample: np.ndarray, settings: ClusterConfig, seed: int):
    """Return KMeans centroids of ``sample`` to start MLlib from.

    The centroids come from scikit-learn's KMeans with one greedy k-means++
    start and Lloyd iterations up to ``settings.max_iter``. If the sample has fewer
    distinct rows than ``k``, some centroids repeat, and MLlib leaves the
    repeats without rows, as it would any empty cluster.
    """
    with warnings.catch_warnings():
        # Fewer distinct rows than k only repeat centroids, which MLlib accepts.
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = SklearnKMeans(
            settings.k,
            init="k-means++",
            n_init=1,
            max_iter=settings.max_iter,
            random_state=seed,
        ).fit(sample)
    return fitted.cluster_centers_


def jvm_kmeans_model(spark: SparkSession, centroids: np.ndarray):
    """Return a JVM ``mllib.clustering.KMeansModel`` with ``centroids``."""
    centres = [DenseVector(row) for row in np.asarray(centroids, dtype=np.float64)]
    return spark.sparkContext._jvm.org.apache.spark.mllib.clustering.KMeansModel(
        _py2java(spark.sparkContext, centres)
    )


def mllib_kmeans(spark, settings: ClusterConfig, seed: int):
    """Return a JVM ``org.apache.spark.mllib.clustering.KMeans`` for ``settings``.

    Same algorithm and parameters as ``pyspark.ml.clustering.KMeans``:
    k-means|| initialisation with ``init_steps`` steps unless an initial
    model is set, then Lloyd iterations until every centroid moves less than
    ``tol`` or ``max_iter`` is reached.
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
