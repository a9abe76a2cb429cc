"""Scoring stage: a registered model applied to new tables, with drift checks."""

from deepclust.score.drift import cluster_shares, population_stability_index
from deepclust.score.inputs import ScoringModel, load_cluster_model, read_scoring_input

__all__ = [
    "ScoringModel",
    "cluster_shares",
    "load_cluster_model",
    "population_stability_index",
    "read_scoring_input",
]
