"""Refinement of the embedding and centroids after KMeans (IDEC)."""

from deepclust.refine.idec import (
    ClusteringModel,
    balance_penalty,
    kl_to_target,
    soft_assignments,
    target_distribution,
)

__all__ = [
    "ClusteringModel",
    "balance_penalty",
    "kl_to_target",
    "soft_assignments",
    "target_distribution",
]
