"""The model-family interface: spec, base autoencoder and family registry.

A family is an :class:`Autoencoder` subclass registered under a name with
:func:`register_family`. Training, embedding and tracking see only this
interface, so everything that differs between families stays in the family:

- its ``encoder`` maps the scaled, flat ``features`` of a batch,
  ``(batch, input_dim)``, to ``(batch, embedding_dim)``, and its ``decoder``
  maps the embedding back to ``(batch, input_dim)``. A family that needs
  another layout, such as images, reshapes inside these modules.
- :meth:`Autoencoder.check_spec` rejects a spec the family cannot build, with
  an :class:`~deepclust.errors.InputError`; the job calls it on the driver
  before training starts.

NOTE: the shard reader and the embedding stage hand every family equal-length
flat rows. A family over variable-length sequences (``array<array<float>>``)
needs them to build its batch layout, such as padded steps with lengths,
through a family method added here.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass

import pyarrow as pa
import torch
from torch import nn

from deepclust.errors import InputError, invalid
from deepclust.read.shards import list_column_to_numpy


@dataclass(frozen=True)
class ModelSpec:
    """Serializable description of an autoencoder.

    Attributes
    ----------
    family : str
        Model family name, e.g. ``"mlp"``.
    input_dim : int
        Length of a row's ``features`` array; for series, the channel count.
    hidden_dims : tuple of int
        Encoder layer sizes between input and embedding: units of the dense
        layers (``mlp``) or channels of the convolution blocks (``conv``). The
        decoder mirrors them.
    embedding_dim : int
        Size of the embedding.
    shift, scale : tuple of float or None
        Input scaling, ``(x - shift) / scale``, learned from the training table;
        None means no scaling.
    input_shape : tuple of int or None
        Shape of one row's ``features`` before flattening, e.g.
        ``(channels, height, width)`` for images stored channels-first; None
        for plain vectors.
    kernel_size : int
        Side of the square convolution kernels; used by ``conv`` only.
    rnn_cell : str
        ``"gru"`` or ``"lstm"``, for the ``rnn`` family.
    rnn_hidden_size, rnn_layers : int
        Hidden size and layer count of the encoder and decoder RNNs.
    bidirectional : bool
        Whether the encoder RNN reads the series in both directions.
    normalize : bool
        Whether the ``rnn`` family z-normalises each series and channel.
    normalize_embedding : bool
        Whether :meth:`Autoencoder.embed` scales each embedding to unit L2
        length, so that KMeans compares directions of the code.
    rnn_downsample : int
        Factor by which the ``rnn`` family averages time steps before its
        encoder. The decoder reconstructs the averaged series.
    rnn_pooling : str
        How the ``rnn`` family reads the code from its encoder: ``"last"``
        (final hidden states) or ``"max"`` (maximum over time of the outputs).
    rnn_shift_tolerance : int
        Time steps by which the ``rnn`` reconstruction may be shifted against
        the series. The loss takes the best shift.
    rnn_invariance_weight : float
        Weight of the ``rnn`` loss term that pulls the code of a series and
        the code of its shifted copy together, when a batch carries copies.
    """

    family: str
    input_dim: int
    hidden_dims: tuple
    embedding_dim: int
    shift: tuple | None = None
    scale: tuple | None = None
    input_shape: tuple | None = None
    kernel_size: int = 3
    # Recurrent family only; the other families ignore these.
    rnn_cell: str = "gru"
    rnn_hidden_size: int = 64
    rnn_layers: int = 1
    bidirectional: bool = True
    normalize: bool = True
    normalize_embedding: bool = False
    rnn_downsample: int = 1
    rnn_pooling: str = "last"
    rnn_shift_tolerance: int = 0
    rnn_invariance_weight: float = 1.0

    def to_json(self) -> str:
        """Return the spec as a JSON string."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Build a spec from :meth:`to_json` output."""
        values = json.loads(text)
        for key in ("hidden_dims", "shift", "scale", "input_shape"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


class Autoencoder(nn.Module):
    """Base autoencoder: input scaling, then a family's encoder and decoder.

    Subclasses set ``self.encoder`` and ``self.decoder``. The scaling lives in
    buffers, so the saved weights carry the preprocessing with them.

    Shape:
        - Input: ``(batch, input_dim)``, float32, the raw ``features``.
        - :meth:`embed` output: ``(batch, embedding_dim)``.
        - :meth:`forward` output: ``(embedding, reconstruction)``, the
          reconstruction of the scaled input, ``(batch, input_dim)``.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.check_spec(spec)
        self.spec = spec
        shift = spec.shift or (0.0,) * spec.input_dim
        scale = spec.scale or (1.0,) * spec.input_dim
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    @classmethod
    def check_spec(cls, spec: ModelSpec) -> None:
        """Raise :class:`InputError` if this family cannot build ``spec``.

        The base check covers ``input_shape``: positive sizes whose product is
        ``input_dim``. Families extend it with their own limits.
        """
        shape = spec.input_shape
        if shape is None:
            return
        if not shape or any(
            isinstance(size, bool) or not isinstance(size, int) or size < 1
            for size in shape
        ):
            raise invalid(
                "input shape",
                list(shape),
                "a list of integers >= 1, e.g. [channels, height, width]",
                "Set data.image_shape to the layout of the features.",
            )
        if math.prod(shape) != spec.input_dim:
            raise InputError(
                f"Invalid input shape {list(shape)}: its sizes multiply to "
                f"{math.prod(shape)}, but the features have "
                f"{spec.input_dim}. Set data.image_shape so that the product of "
                "its sizes equals the feature length."
            )

    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        """Return the scaled input that the encoder reads, ``(x - shift) / scale``."""
        return (x - self.shift) / self.scale

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Return the encoder's code of raw features, which the decoder reads."""
        return self.encoder(self.scale_input(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return the embedding that is clustered: the code, scaled to unit
        length when ``spec.normalize_embedding`` is set."""
        code = self.encode(x)
        if self.spec.normalize_embedding:
            return nn.functional.normalize(code, dim=1)
        return code

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encode(x)
        return code, self.decoder(code)

    # Batch input and loss. A family whose input is not a flat float matrix,
    # such as series of different lengths, overrides these two. The training
    # loop and the embedding UDF call them instead of building tensors.

    @classmethod
    def batch_from_arrow(cls, column: pa.Array):
        """Turn an Arrow ``features`` column into this family's model input.

        Returns a writable float32 tensor of shape ``(rows, input_dim)``.
        """
        return torch.from_numpy(list_column_to_numpy(column))

    def reconstruction_loss(self, x, reconstruction: torch.Tensor) -> torch.Tensor:
        """Return the mean squared error between reconstruction and scaled input."""
        return nn.functional.mse_loss(reconstruction, self.scale_input(x))

    def training_loss(
        self, x, code: torch.Tensor, reconstruction: torch.Tensor
    ) -> torch.Tensor:
        """Return the loss that training minimises for one :meth:`forward` output.

        The base loss is :meth:`reconstruction_loss`; a family may add terms
        on the code.
        """
        return self.reconstruction_loss(x, reconstruction)


_FAMILIES: dict[str, type[Autoencoder]] = {}


def register_family(name: str):
    """Class decorator that makes an :class:`Autoencoder` subclass a family."""

    def decorate(cls):
        _FAMILIES[name] = cls
        return cls

    return decorate


def family_class(name: str) -> type[Autoencoder]:
    """Return the :class:`Autoencoder` subclass registered as ``name``."""
    # Importing the families registers them.
    from deepclust.models import conv, mlp, rnn  # noqa: F401

    if name not in _FAMILIES:
        raise InputError(
            f"Invalid model family {name!r}: expected one of "
            f"{sorted(_FAMILIES)}. Set model.family in the config."
        )
    return _FAMILIES[name]


def check_spec(spec: ModelSpec) -> None:
    """Raise :class:`InputError` if ``spec`` cannot be built, without building it."""
    family_class(spec.family).check_spec(spec)


def build_autoencoder(spec: ModelSpec) -> Autoencoder:
    """Build the autoencoder that ``spec`` describes, with fresh weights.

    Raises
    ------
    InputError
        For an unknown family or a spec the family rejects.
    """
    return family_class(spec.family)(spec)


def state_dict_to_bytes(model: nn.Module) -> bytes:
    """Serialize a model's weights with ``torch.save``."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def load_autoencoder(spec: ModelSpec, weights: bytes) -> Autoencoder:
    """Rebuild an autoencoder from its spec and :func:`state_dict_to_bytes` output.

    The weights load with ``weights_only=True``, so no pickled objects run.
    """
    model = build_autoencoder(spec)
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model
