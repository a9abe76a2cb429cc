"""Recurrent sequence-to-sequence autoencoder for time series.

A row's ``features`` is a series of time steps, each a list of channel values
(``array<array<float>>``, time steps x channels). Series in one batch may
differ in length. They are padded with zeros to the longest one and carry
their lengths. The encoder reads them packed and the loss counts only real
time steps, so padding changes neither the embedding nor the loss.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from deepclust.errors import InputError
from deepclust.models.base import Autoencoder, ModelSpec, register_family

RNN_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}

# Below this standard deviation a channel counts as constant: z-normalisation
# centres it and leaves its scale alone instead of dividing by about zero.
_MIN_STD = 1e-6


class SeriesBatch(NamedTuple):
    """Series of different lengths, zero-padded to the longest.

    Attributes
    ----------
    values : Tensor of shape (batch, max_length, channels), float32
        Time step ``t`` of series ``i`` is ``values[i, t]`` for
        ``t < lengths[i]``; the steps after that are padding.
    lengths : Tensor of shape (batch,), int64, on the CPU
        Number of real time steps of each series, at least 1.
    """

    values: torch.Tensor
    lengths: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> SeriesBatch:
        """Return the batch with ``values`` on ``device``.

        ``lengths`` stays on the CPU, where ``pack_padded_sequence`` needs it.
        """
        return SeriesBatch(
            self.values.to(device, non_blocking=non_blocking), self.lengths
        )

    def mask(self) -> torch.Tensor:
        """Return a ``(batch, max_length, 1)`` float mask: 1 on real time steps."""
        steps = torch.arange(self.values.shape[1], device=self.values.device)
        lengths = self.lengths.to(self.values.device)
        return (steps[None, :] < lengths[:, None]).unsqueeze(-1).to(self.values.dtype)


def series_batch_from_arrow(column: pa.Array) -> SeriesBatch:
    """Pad an Arrow ``list<list<float>>`` column of series into a batch.

    Parameters
    ----------
    column : Array or ChunkedArray of list<list<float>>
        One series per row, time steps x channels, every step with the same
        number of channels and every series with at least one step.

    Raises
    ------
    InputError
        If a series has no time steps or the channel counts differ.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    rows = len(column)
    lengths = column.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
    steps = column.flatten()
    channel_counts = steps.value_lengths().to_numpy(zero_copy_only=False)
    if rows and lengths.min() == 0:
        raise InputError(
            f"Invalid series at batch row {int(np.argmin(lengths))}: expected at "
            "least one time step, got an empty series. Drop empty series from "
            "the feature table."
        )
    if len(channel_counts) and channel_counts.min() != channel_counts.max():
        raise InputError(
            "Invalid series batch: expected the same number of channels in every "
            f"time step, got counts from {channel_counts.min()} to "
            f"{channel_counts.max()}. Give every time step all channels."
        )
    channels = int(channel_counts[0]) if len(channel_counts) else 1
    values = np.asarray(
        steps.flatten().to_numpy(zero_copy_only=False), dtype=np.float32
    ).reshape(-1, channels)

    # Scatter the concatenated steps into a zero-padded (rows, max, channels).
    max_length = int(lengths.max()) if rows else 0
    padded = np.zeros((rows, max_length, channels), dtype=np.float32)
    starts = np.cumsum(lengths) - lengths
    row_index = np.repeat(np.arange(rows), lengths)
    step_index = np.arange(len(values)) - np.repeat(starts, lengths)
    padded[row_index, step_index] = values
    return SeriesBatch(torch.from_numpy(padded), torch.from_numpy(lengths))


def z_normalize(batch: SeriesBatch) -> torch.Tensor:
    """Z-normalise each series and channel over its real time steps.

    Returns
    -------
    Tensor of shape (batch, max_length, channels)
        Mean 0 and standard deviation 1 per series and channel (a constant
        channel becomes 0); padding steps are 0.
    """
    mask = batch.mask()
    count = mask.sum(dim=1, keepdim=True)
    mean = (batch.values * mask).sum(dim=1, keepdim=True) / count
    centred = (batch.values - mean) * mask
    std = torch.sqrt((centred**2).sum(dim=1, keepdim=True) / count)
    std = torch.where(std < _MIN_STD, torch.ones_like(std), std)
    return centred / std


@register_family("rnn")
class RNNAutoencoder(Autoencoder):
    """Sequence-to-sequence autoencoder: encoder RNN, linear bottleneck, decoder RNN.

    The encoder (GRU or LSTM, ``spec.rnn_layers`` layers, optionally
    bidirectional) reads the packed series. The final hidden states of its
    last layer, both directions concatenated, pass through a linear layer to
    the embedding. The decoder RNN starts from a hidden state computed from
    the embedding, receives the embedding at every time step, and a linear
    layer maps its outputs to the channels.

    Shape:
        - Input: :class:`SeriesBatch` of ``(batch, max_length, input_dim)``.
        - :meth:`embed` output: ``(batch, embedding_dim)``.
        - :meth:`forward` output: ``(embedding, reconstruction)``, the
          reconstruction of the normalised input, ``(batch, max_length,
          input_dim)``; steps past a series' length are not meaningful.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        if spec.rnn_cell not in RNN_CELLS:
            raise InputError(
                f"Invalid model.rnn_cell {spec.rnn_cell!r}: expected one of "
                f"{sorted(RNN_CELLS)}. Fix model.rnn_cell in the config."
            )
        cell = RNN_CELLS[spec.rnn_cell]
        hidden = spec.rnn_hidden_size
        directions = 2 if spec.bidirectional else 1
        self.encoder = cell(
            spec.input_dim,
            hidden,
            spec.rnn_layers,
            batch_first=True,
            bidirectional=spec.bidirectional,
        )
        self.to_embedding = nn.Linear(directions * hidden, spec.embedding_dim)
        self.to_decoder_state = nn.Linear(spec.embedding_dim, spec.rnn_layers * hidden)
        self.decoder = cell(
            spec.embedding_dim, hidden, spec.rnn_layers, batch_first=True
        )
        self.to_output = nn.Linear(hidden, spec.input_dim)

    @classmethod
    def batch_from_arrow(cls, column: pa.Array) -> SeriesBatch:
        """Pad an Arrow ``list<list<float>>`` column into a :class:`SeriesBatch`."""
        return series_batch_from_arrow(column)

    def scale_input(self, x: SeriesBatch) -> torch.Tensor:
        """Return the encoder's input: the series, z-normalised if configured.

        Padding steps are 0 in the result.
        """
        if self.spec.normalize:
            return z_normalize(x)
        return x.values * x.mask()

    def encode(self, x: SeriesBatch) -> torch.Tensor:
        """Return the ``(batch, embedding_dim)`` code of raw series."""
        packed = pack_padded_sequence(
            self.scale_input(x), x.lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, state = self.encoder(packed)
        hidden = state[0] if isinstance(state, tuple) else state
        # hidden is (layers * directions, batch, size); keep the last layer.
        directions = 2 if self.spec.bidirectional else 1
        last = torch.cat(list(hidden[-directions:]), dim=1)
        return self.to_embedding(last)

    def decode(self, z: torch.Tensor, max_length: int) -> torch.Tensor:
        """Reconstruct ``(batch, max_length, input_dim)`` series from embeddings."""
        batch = z.shape[0]
        layers, hidden = self.spec.rnn_layers, self.spec.rnn_hidden_size
        start = torch.tanh(self.to_decoder_state(z))
        start = start.reshape(batch, layers, hidden).transpose(0, 1).contiguous()
        if self.spec.rnn_cell == "lstm":
            start = (start, torch.zeros_like(start))
        inputs = z.unsqueeze(1).expand(batch, max_length, z.shape[1])
        outputs, _ = self.decoder(inputs, start)
        return self.to_output(outputs)

    def forward(self, x: SeriesBatch) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encode(x)
        return code, self.decode(code, x.values.shape[1])

    def reconstruction_loss(
        self, x: SeriesBatch, reconstruction: torch.Tensor
    ) -> torch.Tensor:
        """Return the mean squared error over real time steps and channels.

        Padding steps add nothing to the sum and are not counted.
        """
        mask = x.mask()
        squared = (reconstruction - self.scale_input(x)) ** 2 * mask
        return squared.sum() / (mask.sum() * reconstruction.shape[-1])
