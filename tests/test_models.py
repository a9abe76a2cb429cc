import numpy as np
import pytest
import torch

from deepclust.models import ModelSpec, build_autoencoder
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
    assert abs(row - 2) <= 1 and abs(col - 2) <= 1


def test_random_shift_zero_is_identity():
    x = torch.rand(3, 12)
    assert random_shift(x, (3, 2, 2), 0) is x


def test_random_shift_keeps_channels_aligned():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((8, 3 * 6 * 7), dtype=np.float32))
    x[:, 42:84] = x[:, 0:42]  # channel 1 equals channel 0
    shifted = random_shift(x, (3, 6, 7), 2, torch.Generator().manual_seed(1))
    torch.testing.assert_close(shifted[:, 0:42], shifted[:, 42:84])
