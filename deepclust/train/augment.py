"""Data augmentation for image rows, applied per sample in torch."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def random_shift(
    x: torch.Tensor,
    image_shape: tuple[int, int, int],
    max_shift: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Shift each image by a random whole number of pixels, filling with zeros.

    Parameters
    ----------
    x : Tensor of shape (batch, channels * height * width)
        Flattened images in channels-first order.
    image_shape : (channels, height, width)
    max_shift : int
        Each image moves by ``dy, dx`` drawn uniformly from
        ``[-max_shift, max_shift]``, independently per image.

    Returns
    -------
    Tensor of the same shape as ``x``.
    """
    if max_shift == 0:
        return x
    channels, height, width = image_shape
    batch = x.shape[0]
    images = x.reshape(batch, channels, height, width)
    padded = F.pad(images, (max_shift, max_shift, max_shift, max_shift))
    offsets = torch.randint(
        0, 2 * max_shift + 1, (2, batch), generator=generator, device=x.device
    )
    rows = offsets[0][:, None] + torch.arange(height, device=x.device)[None, :]
    cols = offsets[1][:, None] + torch.arange(width, device=x.device)[None, :]
    batch_index = torch.arange(batch, device=x.device)[:, None, None, None]
    channel_index = torch.arange(channels, device=x.device)[None, :, None, None]
    shifted = padded[
        batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]
    ]
    return shifted.reshape(batch, -1)
