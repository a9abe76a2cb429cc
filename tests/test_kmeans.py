import numpy as np
import pytest
from sklearn.cluster import KMeans

from deepclust.cluster import fit_kmeans
from deepclust.cluster.kmeans import persisted_vectors, sample_rows
from deepclust.config import ClusterConfig
from deepclust.errors import InputError


def blobs(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(4, 3))
    return centres[rng.integers(0, 4, rows)] + rng.normal(size=(rows, 3))


def embeddings_frame(spark, points: np.ndarray, element: str = "float"):
    rows = [(i, [float(v) for v in point]) for i, point in enumerate(points)]
    return spark.createDataFrame(rows, f"id long, embedding array<{element}>")


@pytest.mark.parametrize(
    ("element", "init_mode"),
    [("float", "k-means++"), ("double", "k-means++"), ("float", "k-means||")],
)
def test_kmeans_matches_sklearn_inertia(spark, element, init_mode):
    points = blobs(600)
    embeddings = embeddings_frame(spark, points, element)
    settings = ClusterConfig(k=4, n_init=3, init_mode=init_mode)

    fitted = fit_kmeans(embeddings, settings, 0, len(points))

    reference = KMeans(4, n_init=10, random_state=0).fit(points)
    assert fitted.centroids.shape == (4, 3)
    assert fitted.inertia <= reference.inertia_ * 1.01
    assert fitted.iterations >= 1


def test_kmeans_keeps_lowest_inertia_run(spark):
    points = blobs(300, seed=1)
    embeddings = embeddings_frame(spark, points)
    single = [
        fit_kmeans(embeddings, ClusterConfig(k=4, n_init=1), seed, len(points))
        for seed in range(3)
    ]

    best = fit_kmeans(embeddings, ClusterConfig(k=4, n_init=3), 0, len(points))

    assert best.inertia == min(run.inertia for run in single)
    assert best.seed == min(single, key=lambda run: run.inertia).seed


def test_kmeans_inertia_is_sum_of_squared_distances(spark):
    points = blobs(200, seed=2)
    embeddings = embeddings_frame(spark, points)

    fitted = fit_kmeans(embeddings, ClusterConfig(k=4), 0, len(points))

    squared = ((points[:, None, :] - fitted.centroids[None]) ** 2).sum(axis=2)
    assert fitted.inertia == pytest.approx(squared.min(axis=1).sum(), rel=1e-4)


def test_kmeans_rejects_k_above_rows(spark):
    embeddings = embeddings_frame(spark, blobs(5))

    with pytest.raises(InputError, match=r"Invalid cluster.k: .* \(5\), got 6"):
        fit_kmeans(embeddings, ClusterConfig(k=6), 0, 5)


@pytest.mark.parametrize(
    ("init_sample", "low", "high"),
    [(1000, 850, 1150), (10, 60, 100), (100_000, 3000, 3000)],
)
def test_sample_rows_size(spark, init_sample, low, high):
    # At least 20 rows per cluster (k=4: 80), and every row of a smaller table.
    points = blobs(3000, seed=3)
    vectors = persisted_vectors(embeddings_frame(spark, points, "double"), "embedding")
    settings = ClusterConfig(k=4, init_sample=init_sample)
    try:
        sample = sample_rows(spark, vectors, len(points), settings, seed=0)
    finally:
        vectors.unpersist(False)

    assert sample.shape[1] == 3
    assert low <= len(sample) <= high
    assert np.isin(sample[:, 0], points[:, 0]).all()


def test_plusplus_start_repeated_rows(spark):
    # Three distinct rows and k=4: one centroid is left without rows.
    points = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), 20, axis=0)
    embeddings = embeddings_frame(spark, points)

    fitted = fit_kmeans(embeddings, ClusterConfig(k=4), 0, len(points))

    assert fitted.inertia == pytest.approx(0.0, abs=1e-9)
    assert fitted.centroids.shape == (4, 2)


def test_parallel_start_warns_on_fewer_centroids(spark, caplog):
    # k-means|| keeps distinct candidates only: 3 distinct rows give 3 centroids.
    points = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), 20, axis=0)
    embeddings = embeddings_frame(spark, points)
    settings = ClusterConfig(k=4, init_mode="k-means||")

    fitted = fit_kmeans(embeddings, settings, 0, len(points))

    assert fitted.centroids.shape == (3, 2)
    assert "found 3 distinct centroids, fewer than cluster.k=4" in caplog.text
