"""Data augmentation for series batches of the rnn family."""

from __future__ import annotations

import torch

from deepclust.models.rnn import SeriesBatch, shifted_step_index


def add_shifted_copies(
    batch: SeriesBatch, max_shift: int, generator: torch.Generator | None = None
) -> SeriesBatch:
    """Attach to each series a copy moved in time by a random number of steps.

    The copy takes step ``t`` from step ``t - offset`` of the series, with
    ``offset`` drawn uniformly from ``[-max_shift, max_shift]`` per series,
    and repeats the first or last real value where the series moved away from
    its edge. Lengths and padding stay as they are.

    Parameters
    ----------
    batch : SeriesBatch
        Values of shape (batch, max_length, channels), 0 on padding steps.
    max_shift : int
        Largest shift in time steps; 0 returns ``batch`` unchanged.

    Returns
    -------
    SeriesBatch
        ``batch`` with ``shifted`` set to the moved copies.
    """
    if max_shift == 0:
        return batch
    rows, max_length, channels = batch.values.shape
    offsets = torch.randint(
        -max_shift, max_shift + 1, (rows, 1), generator=generator
    ).to(batch.values.device)
    index = shifted_step_index(batch.lengths, offsets, max_length)[:, 0]
    moved = torch.gather(batch.values, 1, index.unsqueeze(-1).expand(-1, -1, channels))
    return batch._replace(shifted=moved * batch.mask())
