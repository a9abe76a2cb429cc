"""IDEC: refine an autoencoder's embedding for the clustering it feeds.

Improved Deep Embedded Clustering keeps training the autoencoder after KMeans,
with the centroids as parameters. Each row's soft assignment ``q`` comes from
a Student-t kernel on its distance to every centroid. A sharpened target
``p`` (``q`` squared, divided by the cluster's total ``q``, normalised per
row) is held fixed between refreshes, and the loss is::

    KL(p || q) + gamma * reconstruction + balance * KL(mean of q || uniform)

The reconstruction term keeps the embedding faithful to the input. The
optional balance term stops one cluster from absorbing another's rows, for
tables whose clusters are known to be of similar size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepclust.models.base import Autoencoder


def soft_assignments(
    embedding: torch.Tensor, centroids: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    """Return the Student-t soft assignments ``q`` of each row to each centroid.

    Parameters
    ----------
    embedding : Tensor of shape (rows, dim)
    centroids : Tensor of shape (k, dim)
    alpha : float
        Degrees of freedom of the kernel.

    Returns
    -------
    Tensor of shape (rows, k) whose rows sum to 1.
    """
    squared = torch.cdist(embedding, centroids).pow(2)
    kernel = (1.0 + squared / alpha).pow(-(alpha + 1.0) / 2.0)
    return kernel / kernel.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor, frequency: torch.Tensor) -> torch.Tensor:
    """Return the sharpened target ``p = q^2 / frequency``, normalised per row.

    Parameters
    ----------
    q : Tensor of shape (rows, k)
        Soft assignments of some rows.
    frequency : Tensor of shape (k,)
        Sum of ``q`` per cluster over every row of the table, not only these,
        so that ranks holding different rows build the same target.
    """
    weight = q.pow(2) / frequency.clamp_min(1e-12)
    return weight / weight.sum(dim=1, keepdim=True)


def kl_to_target(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Return ``KL(p || q)`` summed over clusters and averaged over rows."""
    return (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(1).mean()


def balance_penalty(q: torch.Tensor) -> torch.Tensor:
    """Return ``KL(mean of q over the rows || uniform)``.

    Zero when the batch spreads evenly over the clusters; it grows as the batch
    piles into fewer clusters.
    """
    mean = q.mean(dim=0).clamp_min(1e-12)
    return (mean * (mean.log() + math.log(q.shape[1]))).sum()


class ClusteringModel(nn.Module):
    """An autoencoder and trainable centroids in its embedding space.

    Parameters
    ----------
    autoencoder : Autoencoder
        Pre-trained model; its :meth:`~Autoencoder.embed` output is clustered.
    centroids : array-like of shape (k, embedding_dim)
        Starting centroids, from the KMeans stage.
    alpha : float
        Degrees of freedom of the Student-t kernel.

    Shape:
        - Input: the family's batch, as from ``batch_from_arrow``.
        - Output: ``(q, reconstruction)``, ``q`` of shape ``(batch, k)``.
    """

    def __init__(self, autoencoder: Autoencoder, centroids, alpha: float = 1.0):
        super().__init__()
        self.autoencoder = autoencoder
        self.centroids = nn.Parameter(torch.as_tensor(centroids, dtype=torch.float32))
        self.alpha = alpha

    def forward(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        code, reconstruction = self.autoencoder(x)
        if self.autoencoder.spec.normalize_embedding:
            code = nn.functional.normalize(code, dim=1)
        return soft_assignments(code, self.centroids, self.alpha), reconstruction

    @torch.no_grad()
    def assign(self, x) -> torch.Tensor:
        """Return ``q`` for a batch without building a graph."""
        embedding = self.autoencoder.embed(x)
        return soft_assignments(embedding, self.centroids, self.alpha)
