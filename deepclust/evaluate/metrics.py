"""Clustering metrics computed from a small contingency table built by Spark.

Only the ``k x n_labels`` table of counts reaches the driver; ACC, NMI and ARI
are functions of it.
"""

from __future__ import annotations

import numpy as np
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.optimize import linear_sum_assignment
from scipy.special import comb
from sklearn.metrics import mutual_info_score


def contingency_table(assignments: DataFrame, labels: DataFrame) -> np.ndarray:
    """Count rows per (cluster, label) with Spark.

    Parameters
    ----------
    assignments : DataFrame
        ``id``, ``cluster``.
    labels : DataFrame
        ``id``, ``label``; rows with a null label are left out.

    Returns
    -------
    ndarray of shape (n_clusters_seen, n_labels_seen), int64
    """
    counts = (
        assignments.select("id", "cluster")
        .join(labels.select("id", "label").where(F.col("label").isNotNull()), "id")
        .groupBy("cluster", "label")
        .count()
        .collect()
    )
    clusters = sorted({row["cluster"] for row in counts})
    label_values = sorted({row["label"] for row in counts}, key=repr)
    cluster_index = {c: i for i, c in enumerate(clusters)}
    label_index = {v: i for i, v in enumerate(label_values)}
    table = np.zeros((len(clusters), len(label_values)), dtype=np.int64)
    for row in counts:
        table[cluster_index[row["cluster"]], label_index[row["label"]]] = row["count"]
    return table


def clustering_accuracy(contingency: np.ndarray) -> float:
    """Return the accuracy of the best one-to-one cluster-to-label matching.

    The matching maximizes matched rows (Hungarian method); clusters or labels
    left without a partner count as errors.
    """
    total = contingency.sum()
    if total == 0:
        return float("nan")
    rows, cols = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, cols].sum() / total)


def adjusted_rand_index(contingency: np.ndarray) -> float:
    """Return the adjusted Rand index (Hubert and Arabie, 1985) of a contingency."""
    n = contingency.sum()
    sum_cells = comb(contingency, 2).sum()
    sum_rows = comb(contingency.sum(axis=1), 2).sum()
    sum_cols = comb(contingency.sum(axis=0), 2).sum()
    expected = sum_rows * sum_cols / comb(n, 2) if n > 1 else 0.0
    maximum = (sum_rows + sum_cols) / 2.0
    if maximum == expected:
        return 1.0
    return float((sum_cells - expected) / (maximum - expected))


def normalized_mutual_info(contingency: np.ndarray) -> float:
    """Return NMI with the arithmetic-mean normalisation (scikit-learn's default)."""
    mutual_info = mutual_info_score(None, None, contingency=contingency)
    entropy_clusters = _entropy(contingency.sum(axis=1))
    entropy_labels = _entropy(contingency.sum(axis=0))
    if entropy_clusters == 0 and entropy_labels == 0:
        return 1.0
    normaliser = (entropy_clusters + entropy_labels) / 2.0
    return float(mutual_info / normaliser) if normaliser > 0 else 0.0


def metrics_from_contingency(contingency: np.ndarray) -> dict[str, float]:
    """Return ``acc``, ``nmi`` and ``ari`` of a contingency table."""
    return {
        "acc": clustering_accuracy(contingency),
        "nmi": normalized_mutual_info(contingency),
        "ari": adjusted_rand_index(contingency),
    }


def silhouette(assignments: DataFrame, embeddings: DataFrame) -> float:
    """Return the silhouette of the assignments in embedding space (MLlib).

    Uses MLlib's squared-Euclidean silhouette, which is linear in the rows.
    Returns NaN when every row is in one cluster.
    """
    joined = embeddings.join(assignments.select("id", "cluster"), "id").select(
        array_to_vector("embedding").alias("vector"), F.col("cluster").cast("double")
    )
    if joined.select("cluster").distinct().limit(2).count() < 2:
        return float("nan")
    evaluator = ClusteringEvaluator(
        featuresCol="vector",
        predictionCol="cluster",
        metricName="silhouette",
        distanceMeasure="squaredEuclidean",
    )
    return float(evaluator.evaluate(joined))


def evaluate_assignments(
    assignments: DataFrame, embeddings: DataFrame, labels: DataFrame | None
) -> dict[str, float]:
    """Return the silhouette, plus ACC, NMI, ARI and the labelled row count
    when ``labels`` is given."""
    metrics = {"silhouette": silhouette(assignments, embeddings)}
    if labels is not None:
        table = contingency_table(assignments, labels)
        metrics.update(metrics_from_contingency(table))
        metrics["labelled_rows"] = float(table.sum())
    return metrics


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())
