import math

import numpy as np
import pytest
import torch

from deepclust.errors import InputError
from deepclust.models import ModelSpec, build_autoencoder, check_spec
from deepclust.models.base import load_autoencoder, state_dict_to_bytes
from deepclust.train.augment import random_shift


@pytest.mark.parametrize(
    "input_dim, hidden, embedding", [(784, (500, 500, 2000), 10), (4, (8,), 2)]
)
def test_mlp_shapes(input_dim, hidden, embedding):
    spec = ModelSpec("mlp", input_dim, hidden, embedding)
    model = build_autoencoder(spec)
    z, reconstruction = model(torch.zeros(5, input_dim))
    assert z.shape == (5, embedding)
    assert reconstruction.shape == (5, input_dim)


def test_dec_layout_layers():
    model = build_autoencoder(ModelSpec("mlp", 784, (500, 500, 2000), 10))
    sizes = [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert sizes == [500, 500, 2000, 10]


def test_scaling_is_part_of_model():
    spec = ModelSpec("mlp", 2, (4,), 2, shift=(1.0, 2.0), scale=(2.0, 4.0))
    model = build_autoencoder(spec)
    scaled = model.scale_input(torch.tensor([[3.0, 6.0]]))
    assert scaled.tolist() == [[1.0, 1.0]]


def test_weights_round_trip():
    spec = ModelSpec("mlp", 6, (5,), 3, shift=(0.5,) * 6, scale=(2.0,) * 6)
    model = build_autoencoder(spec)
    copy = load_autoencoder(
        ModelSpec.from_json(spec.to_json()), state_dict_to_bytes(model)
    )
    x = torch.randn(4, 6)
    torch.testing.assert_close(copy.embed(x), model.embed(x))


def test_random_shift_moves_pixels():
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 2, 2] = 1.0
    generator = torch.Generator().manual_seed(0)
    shifted = random_shift(image.reshape(1, -1), (1, 5, 5), 1, generator)
    grid = shifted.reshape(5, 5)
    assert grid.sum() == 1.0
    row, col = (grid == 1.0).nonzero()[0].tolist()
    assert abs(row - 2) <= 1
    assert abs(col - 2) <= 1


def test_random_shift_zero_is_identity():
    x = torch.rand(3, 12)
    assert random_shift(x, (3, 2, 2), 0) is x


def test_random_shift_keeps_channels_aligned():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((8, 3 * 6 * 7), dtype=np.float32))
    x[:, 42:84] = x[:, 0:42]  # channel 1 equals channel 0
    shifted = random_shift(x, (3, 6, 7), 2, torch.Generator().manual_seed(1))
    torch.testing.assert_close(shifted[:, 0:42], shifted[:, 42:84])


@pytest.mark.parametrize(
    "shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 20, 28), (3, 9, 11)]
)
@pytest.mark.parametrize("kernel", [3, 5])
def test_conv_output_shape_equals_input(shape, kernel):
    dim = math.prod(shape)
    spec = ModelSpec(
        "conv", dim, (8, 16, 32), 10, input_shape=shape, kernel_size=kernel
    )
    model = build_autoencoder(spec)
    x = torch.rand(3, dim)
    z, reconstruction = model(x)
    assert z.shape == (3, 10)
    assert reconstruction.shape == x.shape
    # The decoder's last feature map, before flattening, is the image itself.
    image = model.decoder[:-1](z)
    assert image.shape == (3, *shape)


def test_conv_backward_reaches_first_layer():
    spec = ModelSpec("conv", 64, (4, 8), 3, input_shape=(1, 8, 8))
    model = build_autoencoder(spec)
    x = torch.rand(5, 64)
    _, reconstruction = model(x)
    torch.nn.functional.mse_loss(reconstruction, x).backward()
    first = next(m for m in model.encoder if isinstance(m, torch.nn.Conv2d))
    assert first.weight.grad is not None
    assert first.weight.grad.abs().sum() > 0


def test_conv_weights_round_trip():
    spec = ModelSpec("conv", 3 * 20 * 28, (4, 8), 5, input_shape=(3, 20, 28))
    model = build_autoencoder(spec)
    copy = load_autoencoder(
        ModelSpec.from_json(spec.to_json()), state_dict_to_bytes(model)
    )
    x = torch.rand(2, 3 * 20 * 28)
    torch.testing.assert_close(copy.embed(x), model.embed(x))


@pytest.mark.parametrize(
    "dim, shape, channels, kernel, pattern",
    [
        (64, None, (8,), 3, r"model.family 'conv' without data.image_shape"),
        (
            64,
            (1, 8, 9),
            (8,),
            3,
            r"input shape \[1, 8, 9\]: its sizes multiply to 72, but the features "
            r"have 64\. Set data.image_shape",
        ),
        (
            64,
            (1, 0, 8),
            (8,),
            3,
            r"input shape: expected a list of integers >= 1.*got \[1, 0, 8\]",
        ),
        (64, (8, 8), (8,), 3, r"\[8, 8\].*expected \[channels, height, width\]"),
        (
            64,
            (1, 8, 8),
            (8, 8, 8, 8),
            3,
            r"\[1, 8, 8\] for 4 downsampling blocks.*at least 16 pixels\. "
            r"Use 3 or fewer blocks \(entries of model.conv_channels\)",
        ),
        (5, (1, 1, 5), (8,), 3, r"Use images of at least 2 x 2 pixels"),
        (64, (1, 8, 8), (8,), 4, r"model.kernel_size 4: expected an odd integer"),
    ],
)
def test_conv_spec_rejected(dim, shape, channels, kernel, pattern):
    spec = ModelSpec("conv", dim, channels, 2, input_shape=shape, kernel_size=kernel)
    with pytest.raises(InputError, match=pattern):
        check_spec(spec)
    with pytest.raises(InputError, match=pattern):
        build_autoencoder(spec)


def test_mlp_accepts_image_shape():
    spec = ModelSpec("mlp", 64, (8,), 2, input_shape=(1, 8, 8))
    check_spec(spec)
    with pytest.raises(InputError, match=r"multiply to 72"):
        check_spec(ModelSpec("mlp", 64, (8,), 2, input_shape=(1, 8, 9)))


def test_normalized_embedding_has_unit_length():
    spec = ModelSpec("mlp", 6, (5,), 3, normalize_embedding=True)
    model = build_autoencoder(spec)
    x = torch.randn(4, 6)
    norms = model.embed(x).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(4))
    code, _ = model(x)
    torch.testing.assert_close(model.embed(x), torch.nn.functional.normalize(code))
