"""Training stage: the autoencoder trained across ranks by TorchDistributor."""

from deepclust.train.distributed import TrainResult, train_autoencoder

__all__ = ["TrainResult", "train_autoencoder"]
