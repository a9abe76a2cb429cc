"""Fully connected autoencoder for tabular features."""

from __future__ import annotations

from torch import nn

from deepclust.models.base import Autoencoder, ModelSpec, register_family


def mlp(sizes: list[int]) -> nn.Sequential:
    """Build Linear layers of the given sizes with ReLU between them.

    The last layer has no activation, so embeddings and reconstructions are
    unbounded.
    """
    layers: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@register_family("mlp")
class MLPAutoencoder(Autoencoder):
    """Symmetric MLP autoencoder, e.g. d-500-500-2000-10 as in DEC and IDEC."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        sizes = [spec.input_dim, *spec.hidden_dims, spec.embedding_dim]
        self.encoder = mlp(sizes)
        self.decoder = mlp(sizes[::-1])
