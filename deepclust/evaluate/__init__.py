"""Evaluation stage: external metrics against labels, and the silhouette."""

from deepclust.evaluate.metrics import (
    clustering_accuracy,
    contingency_table,
    evaluate_assignments,
    metrics_from_contingency,
    silhouette,
)

__all__ = [
    "clustering_accuracy",
    "contingency_table",
    "evaluate_assignments",
    "metrics_from_contingency",
    "silhouette",
]
