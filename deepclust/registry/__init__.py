"""Model registry: the trained model as an MLflow pyfunc, its versions and aliases."""

from deepclust.registry.promote import Promotion, promote
from deepclust.registry.pyfunc import ClusterModel
from deepclust.registry.register import (
    CANDIDATE,
    CHAMPION,
    ModelVersionRef,
    register_trained_model,
    resolve_model_uri,
)

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "ClusterModel",
    "ModelVersionRef",
    "Promotion",
    "promote",
    "register_trained_model",
    "resolve_model_uri",
]
