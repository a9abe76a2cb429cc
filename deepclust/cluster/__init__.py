"""Clustering stage: MLlib KMeans on the embeddings."""

from deepclust.cluster.kmeans import (
    ClusterResult,
    assign_clusters,
    fit_kmeans,
    nearest_centroids,
)

__all__ = ["ClusterResult", "assign_clusters", "fit_kmeans", "nearest_centroids"]
