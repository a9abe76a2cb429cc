"""Autoencoder model families behind one small interface.

A :class:`ModelSpec` is everything needed to rebuild an autoencoder: the
family, the input size, the layer sizes and the input scaling learned from the
training table. It is plain JSON, so it travels to executors and into MLflow.
"""

from deepclust.models.base import (
    Autoencoder,
    ModelSpec,
    build_autoencoder,
    check_spec,
)

__all__ = ["Autoencoder", "ModelSpec", "build_autoencoder", "check_spec"]
