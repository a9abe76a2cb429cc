"""Recurrent sequence-to-sequence autoencoder for time series.

A row's ``features`` is a series of time steps, each a list of channel values
(``array<array<float>>``, time steps x channels). Series in one batch may
differ in length. They are padded with zeros to the longest one and carry
their lengths. The encoder reads them packed and the loss counts only real
time steps, so padding changes neither the embedding nor the loss.

Three options target series whose classes differ in shape but not in the time
of their events. ``rnn_downsample`` averages groups of time steps before the
encoder. ``rnn_pooling: max`` reads the code as the maximum over time of the
encoder outputs, which changes little when an event moves in time.
``rnn_shift_tolerance`` lets the loss match the reconstruction to the series at
the best shift, so the code needs no event times. With shifted copies in the
batch (``train.series_shift_steps``), a loss term weighted by
``rnn_invariance_weight`` pulls the code of each series to its copy's code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deepclust.errors import InputError
from deepclust.models.base import Autoencoder, ModelSpec, register_family

RNN_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
RNN_POOLINGS = ("last", "max")

# Below this standard deviation a channel counts as constant: z-normalisation
# centres it and leaves its scale alone instead of dividing by about zero.
_MIN_STD = 1e-6
# Keeps the invariance term finite when every code in a batch is equal.
_MIN_CODE_VARIANCE = 1e-6


class SeriesBatch(NamedTuple):
    """Series of different lengths, zero-padded to the longest.

    Attributes
    ----------
    values : Tensor of shape (batch, max_length, channels), float32
        Time step ``t`` of series ``i`` is ``values[i, t]`` for
        ``t < lengths[i]``; the steps after that are padding.
    lengths : Tensor of shape (batch,), int64, on the CPU
        Number of real time steps of each series, at least 1.
    shifted : Tensor of the shape of ``values``, or None
        A copy of each series moved in time, with the same lengths, for the
        invariance term of the loss; None outside training.
    """

    values: torch.Tensor
    lengths: torch.Tensor
    shifted: torch.Tensor | None = None

    def to(self, device, non_blocking: bool = False) -> SeriesBatch:
        """Return the batch with ``values`` and ``shifted`` on ``device``.

        ``lengths`` stays on the CPU, where ``pack_padded_sequence`` needs it.
        """
        shifted = self.shifted
        if shifted is not None:
            shifted = shifted.to(device, non_blocking=non_blocking)
        return SeriesBatch(
            self.values.to(device, non_blocking=non_blocking), self.lengths, shifted
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


def shifted_step_index(
    lengths: torch.Tensor, offsets: torch.Tensor, max_length: int
) -> torch.Tensor:
    """Return the source time step of every step of series moved in time.

    Moving a series by ``offset`` steps takes step ``t`` from step
    ``t - offset``, clamped to the series' real steps, so the first or last
    value repeats where the series moved away from its edge.

    Parameters
    ----------
    lengths : Tensor of shape (batch,), int64
        Real time steps of each series, at least 1.
    offsets : Tensor of shape (batch, shifts), int64
        Shifts per series; positive moves the series later.
    max_length : int
        Time steps of the padded batch.

    Returns
    -------
    Tensor of shape (batch, shifts, max_length), int64
    """
    steps = torch.arange(max_length, device=offsets.device)
    source = steps[None, None, :] - offsets[:, :, None]
    last = (lengths.to(offsets.device) - 1)[:, None, None]
    return torch.minimum(source.clamp(min=0), last)


def downsample(values: torch.Tensor, lengths: torch.Tensor, factor: int):
    """Average each run of ``factor`` time steps of padded series.

    ``values`` must be 0 on padding steps. A series' last group averages only
    its real steps, so padding does not change the result.

    Returns
    -------
    (Tensor of shape (batch, ceil(max_length / factor), channels), Tensor of
    shape (batch,) int64 with the new lengths ``ceil(length / factor)``)
    """
    if factor == 1:
        return values, lengths
    steps = torch.arange(values.shape[1], device=values.device)
    mask = (steps[None, :] < lengths.to(values.device)[:, None]).to(values.dtype)
    # Sum pooling, as the ratio of two averages over the same windows.
    sums = F.avg_pool1d(values.transpose(1, 2), factor, ceil_mode=True)
    counts = F.avg_pool1d(mask[:, None, :], factor, ceil_mode=True)
    pooled = sums / counts.clamp(min=1.0 / factor)
    return pooled.transpose(1, 2), -(-lengths // factor)


@register_family("rnn")
class RNNAutoencoder(Autoencoder):
    """Sequence-to-sequence autoencoder: encoder RNN, linear bottleneck, decoder RNN.

    The encoder (GRU or LSTM, ``spec.rnn_layers`` layers, optionally
    bidirectional) reads the packed series, averaged over groups of
    ``spec.rnn_downsample`` steps. Its last layer gives the code through a
    linear layer: from the final hidden states (``rnn_pooling: last``) or from
    the maximum over time of the outputs (``max``), both directions
    concatenated. The decoder RNN starts from a hidden state computed from the
    embedding, receives the embedding at every time step, and a linear layer
    maps its outputs to the channels.

    Shape:
        - Input: :class:`SeriesBatch` of ``(batch, max_length, input_dim)``.
        - :meth:`embed` output: ``(batch, embedding_dim)``.
        - :meth:`forward` output: ``(code, reconstruction)``. The code is
          ``(batch, embedding_dim)``, or ``(2 * batch, embedding_dim)`` with
          the codes of ``x.shifted`` after those of the series. The
          reconstruction is of the normalised, downsampled input, ``(batch,
          ceil(max_length / rnn_downsample), input_dim)``; steps past a
          series' downsampled length are not meaningful.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        if spec.rnn_cell not in RNN_CELLS:
            raise InputError(
                f"Invalid model.rnn_cell {spec.rnn_cell!r}: expected one of "
                f"{sorted(RNN_CELLS)}. Fix model.rnn_cell in the config."
            )
        if spec.rnn_pooling not in RNN_POOLINGS:
            raise InputError(
                f"Invalid model.rnn_pooling {spec.rnn_pooling!r}: expected one of "
                f"{list(RNN_POOLINGS)}. Fix model.rnn_pooling in the config."
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
        """Return the series, z-normalised if configured, at full time resolution.

        Padding steps are 0 in the result.
        """
        if self.spec.normalize:
            return z_normalize(x)
        return x.values * x.mask()

    def encoder_input(self, x: SeriesBatch) -> SeriesBatch:
        """Return what the encoder reads and the decoder reconstructs.

        The scaled series averaged over groups of ``spec.rnn_downsample``
        steps, with their downsampled lengths; padding steps are 0.
        """
        values, lengths = downsample(
            self.scale_input(x), x.lengths, self.spec.rnn_downsample
        )
        return SeriesBatch(values, lengths)

    def encode(self, x: SeriesBatch) -> torch.Tensor:
        """Return the ``(batch, embedding_dim)`` code of raw series."""
        inputs = self.encoder_input(x)
        packed = pack_padded_sequence(
            inputs.values,
            inputs.lengths.cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        outputs, state = self.encoder(packed)
        if self.spec.rnn_pooling == "max":
            # Padding becomes -inf, so the maximum takes only real steps.
            padded, _ = pad_packed_sequence(
                outputs, batch_first=True, padding_value=float("-inf")
            )
            return self.to_embedding(padded.max(dim=1).values)
        hidden = state[0] if isinstance(state, tuple) else state
        # hidden is (layers * directions, batch, size); keep the last layer.
        directions = 2 if self.spec.bidirectional else 1
        last = torch.cat(list(hidden[-directions:]), dim=1)
        return self.to_embedding(last)

    def decode(self, z: torch.Tensor, max_length: int) -> torch.Tensor:
        """Reconstruct ``(batch, max_length, input_dim)`` series from embeddings.

        ``max_length`` counts downsampled time steps.
        """
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
        steps = -(-x.values.shape[1] // self.spec.rnn_downsample)
        if x.shifted is None:
            code = self.encode(x)
            return code, self.decode(code, steps)
        # One encoder pass over the series and their shifted copies.
        both = SeriesBatch(
            torch.cat([x.values, x.shifted]), torch.cat([x.lengths, x.lengths])
        )
        codes = self.encode(both)
        return codes, self.decode(codes[: len(x.lengths)], steps)

    def reconstruction_loss(
        self, x: SeriesBatch, reconstruction: torch.Tensor
    ) -> torch.Tensor:
        """Return the mean squared error over real time steps and channels.

        The error compares the reconstruction with the encoder input moved by
        every shift up to ``spec.rnn_shift_tolerance`` input steps (rounded
        down to downsampled steps) and keeps the smallest per series. Padding
        steps add nothing to the sum and are not counted.
        """
        target = self.encoder_input(x)
        mask = target.mask()
        tolerance = self.spec.rnn_shift_tolerance // self.spec.rnn_downsample
        offsets = torch.arange(-tolerance, tolerance + 1, device=mask.device)
        offsets = offsets.expand(len(target.lengths), -1)
        # index is (batch, shifts, steps); gather the moved targets per shift.
        index = shifted_step_index(target.lengths, offsets, target.values.shape[1])
        channels = target.values.shape[2]
        moved = torch.gather(
            target.values.unsqueeze(1).expand(-1, offsets.shape[1], -1, -1),
            2,
            index.unsqueeze(-1).expand(-1, -1, -1, channels),
        )
        squared = (reconstruction.unsqueeze(1) - moved) ** 2 * mask.unsqueeze(1)
        per_shift = squared.sum(dim=(2, 3))
        return per_shift.min(dim=1).values.sum() / (mask.sum() * channels)

    def training_loss(
        self, x: SeriesBatch, code: torch.Tensor, reconstruction: torch.Tensor
    ) -> torch.Tensor:
        """Return the reconstruction loss plus, for a batch with shifted copies,
        the invariance term.

        The invariance term is the mean squared difference between the code of
        each series and the code of its copy, divided by the variance of the
        codes over the batch. The variance is a constant in the gradient, so
        the term cannot fall by spreading the codes apart. It can fall by
        shrinking them, and the codes do get small (standard deviation about
        0.1 on Trace). ``spec.rnn_invariance_weight`` scales the term.
        """
        loss = self.reconstruction_loss(x, reconstruction)
        weight = self.spec.rnn_invariance_weight
        if x.shifted is None or weight == 0:
            return loss
        own, copy = code.chunk(2)
        spread = code.var(dim=0).mean().detach() + _MIN_CODE_VARIANCE
        return loss + weight * ((own - copy) ** 2).mean() / spread
