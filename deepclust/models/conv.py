"""Convolutional autoencoder for images stored as flat, channels-first features.

Each encoder block is a convolution with stride 2 and ``kernel_size // 2``
padding followed by ReLU, so a side of ``n`` pixels becomes ``ceil(n / 2)``.
A dense layer maps the last feature map to the embedding. The decoder mirrors
this with transposed convolutions whose output padding (0 or 1 per side)
restores every side exactly, so odd, small and non-square images come back in
their input shape.
"""

from __future__ import annotations

from torch import nn

from deepclust.errors import InputError
from deepclust.models.base import Autoencoder, ModelSpec, register_family

STRIDE = 2


def downsampled_sizes(height: int, width: int, blocks: int) -> list[tuple[int, int]]:
    """Return ``(height, width)`` before the first block and after each block.

    A convolution with stride 2, an odd kernel ``k`` and padding ``k // 2``
    maps a side of ``n`` pixels to ``ceil(n / 2)``.
    """
    sizes = [(height, width)]
    for _ in range(blocks):
        height, width = -(-height // STRIDE), -(-width // STRIDE)
        sizes.append((height, width))
    return sizes


def max_blocks(height: int, width: int) -> int:
    """Return how many blocks fit: each needs a side of at least 2 pixels."""
    return min(height, width).bit_length() - 1


@register_family("conv")
class ConvAutoencoder(Autoencoder):
    """Convolutional autoencoder with a dense bottleneck.

    ``spec.hidden_dims`` holds the output channels of each downsampling block,
    e.g. ``(32, 64, 128)``, and ``spec.input_shape`` is ``(channels, height,
    width)``.

    Shape:
        - Input: ``(batch, channels * height * width)``, flat, channels-first.
        - Embedding: ``(batch, embedding_dim)``.
        - Reconstruction: ``(batch, channels * height * width)``.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        channels, height, width = spec.input_shape
        widths = [channels, *spec.hidden_dims]
        sizes = downsampled_sizes(height, width, len(spec.hidden_dims))
        last_shape = (widths[-1], *sizes[-1])
        last_dim = widths[-1] * sizes[-1][0] * sizes[-1][1]
        kernel, padding = spec.kernel_size, spec.kernel_size // 2

        # Encoder: image, convolution blocks, then the dense bottleneck.
        encoder: list[nn.Module] = [nn.Unflatten(1, tuple(spec.input_shape))]
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            encoder.append(nn.Conv2d(n_in, n_out, kernel, STRIDE, padding))
            encoder.append(nn.ReLU())
        encoder += [nn.Flatten(), nn.Linear(last_dim, spec.embedding_dim)]
        self.encoder = nn.Sequential(*encoder)

        # Decoder: dense layer back to the last feature map, then transposed
        # convolutions. A transposed convolution maps m pixels to
        # 2m - 1 + output_padding, so output_padding = n - 2m + 1 restores n.
        decoder: list[nn.Module] = [
            nn.Linear(spec.embedding_dim, last_dim),
            nn.ReLU(),
            nn.Unflatten(1, last_shape),
        ]
        for level in reversed(range(len(spec.hidden_dims))):
            (target_h, target_w), (inner_h, inner_w) = sizes[level], sizes[level + 1]
            output_padding = (target_h - 2 * inner_h + 1, target_w - 2 * inner_w + 1)
            decoder.append(
                nn.ConvTranspose2d(
                    widths[level + 1],
                    widths[level],
                    kernel,
                    STRIDE,
                    padding,
                    output_padding=output_padding,
                )
            )
            if level > 0:
                decoder.append(nn.ReLU())
        decoder.append(nn.Flatten())
        self.decoder = nn.Sequential(*decoder)

    @classmethod
    def check_spec(cls, spec: ModelSpec) -> None:
        """Reject specs without an image shape, with an even kernel or with
        more downsampling blocks than the image allows.
        """
        if spec.input_shape is None:
            raise InputError(
                "Invalid model.family 'conv' without data.image_shape: the "
                "convolutional autoencoder needs the image layout. Set "
                "data.image_shape: [channels, height, width], or set "
                "model.family: mlp."
            )
        super().check_spec(spec)
        if len(spec.input_shape) != 3:
            raise InputError(
                f"Invalid data.image_shape {list(spec.input_shape)} for "
                "model.family 'conv': expected [channels, height, width]. Set "
                "data.image_shape to three sizes, channels first."
            )
        if spec.kernel_size < 1 or spec.kernel_size % 2 == 0:
            raise InputError(
                f"Invalid model.kernel_size {spec.kernel_size}: expected an odd "
                "integer >= 1, because only odd kernels with padding "
                "kernel_size // 2 give back the input shape. Set it to e.g. 3 "
                "or 5."
            )
        _, height, width = spec.input_shape
        blocks = len(spec.hidden_dims)
        fitting = max_blocks(height, width)
        if blocks > fitting:
            fix = (
                f"Use {fitting} or fewer blocks (entries of model.conv_channels), "
                "or larger images."
                if fitting
                else "Use images of at least 2 x 2 pixels, or model.family: mlp."
            )
            raise InputError(
                f"Invalid data.image_shape {list(spec.input_shape)} for "
                f"{blocks} downsampling blocks (model.conv_channels "
                f"{list(spec.hidden_dims)}): each block halves the height and "
                f"width, so both must be at least {2**blocks} pixels. {fix}"
            )
