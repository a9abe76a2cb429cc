import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from deepclust.evaluate.metrics import (
    adjusted_rand_index,
    clustering_accuracy,
    contingency_table,
    metrics_from_contingency,
    normalized_mutual_info,
)


def contingency(clusters, labels):
    table = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(table, (clusters, labels), 1)
    return table


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmi_and_ari_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, 500)
    clusters = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 6, 500))
    table = contingency(clusters, labels)
    assert normalized_mutual_info(table) == pytest.approx(
        normalized_mutual_info_score(labels, clusters)
    )
    assert adjusted_rand_index(table) == pytest.approx(
        adjusted_rand_score(labels, clusters)
    )


def test_accuracy_of_permuted_labels_is_one():
    labels = np.array([0, 0, 1, 1, 2, 2])
    clusters = np.array([2, 2, 0, 0, 1, 1])
    assert clustering_accuracy(contingency(clusters, labels)) == 1.0


def test_accuracy_counts_best_matching():
    # Cluster 0 contains labels 0, 0, 1 and cluster 1 contains 1, 1, 1, so the
    # best matching maps cluster 0 to label 0 and cluster 1 to label 1.
    labels = np.array([0, 0, 1, 1, 1, 1])
    clusters = np.array([0, 0, 0, 1, 1, 1])
    assert clustering_accuracy(contingency(clusters, labels)) == pytest.approx(5 / 6)


def test_accuracy_with_more_clusters_than_labels():
    labels = np.array([0, 0, 1, 1])
    clusters = np.array([0, 1, 2, 2])
    assert clustering_accuracy(contingency(clusters, labels)) == pytest.approx(3 / 4)


def test_single_cluster_scores_zero_nmi():
    table = np.array([[5, 5]])
    metrics = metrics_from_contingency(table)
    assert metrics["nmi"] == 0.0
    assert metrics["ari"] == 0.0


def test_contingency_table_from_spark(spark):
    assignments = spark.createDataFrame(
        [(1, 0), (2, 0), (3, 1), (4, 1), (5, 1)], "id long, cluster int"
    )
    labels = spark.createDataFrame(
        [(1, "a"), (2, "b"), (3, "b"), (4, "b"), (5, None)], "id long, label string"
    )
    table = contingency_table(assignments, labels)
    assert table.tolist() == [[1, 1], [0, 2]]
