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


def random_rotation(
    x: torch.Tensor,
    image_shape: tuple[int, int, int],
    max_degrees: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rotate each image about its centre by a random angle, filling with zeros.

    Parameters
    ----------
    x : Tensor of shape (batch, channels * height * width)
        Flattened images in channels-first order.
    image_shape : (channels, height, width)
    max_degrees : float
        Each image turns by an angle drawn uniformly from
        ``[-max_degrees, max_degrees]``, independently per image, with
        bilinear interpolation.

    Returns
    -------
    Tensor of the same shape as ``x``.
    """
    if max_degrees == 0:
        return x
    channels, height, width = image_shape
    batch = x.shape[0]
    images = x.reshape(batch, channels, height, width)
    draws = torch.rand(batch, generator=generator).to(x.device)
    angles = (2 * draws - 1) * (max_degrees * torch.pi / 180)
    cos, sin = torch.cos(angles), torch.sin(angles)
    # affine_grid works in coordinates normalised to [-1, 1] per axis; the
    # aspect factors keep the rotation rigid on non-square images.
    aspect = width / height
    theta = torch.zeros(batch, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin / aspect
    theta[:, 1, 0] = sin * aspect
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    turned = F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
    return turned.reshape(batch, -1)


def augment_images(
    x: torch.Tensor,
    image_shape: tuple[int, int, int] | None,
    max_shift: int,
    max_degrees: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply a random rotation, then a random shift, to each image of a batch.

    Returns ``x`` unchanged when ``image_shape`` is None or both amounts are 0.
    """
    if image_shape is None:
        return x
    x = random_rotation(x, image_shape, max_degrees, generator)
    return random_shift(x, image_shape, max_shift, generator)
