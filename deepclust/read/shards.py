"""Stream one rank's shard of a parquet feature table with pyarrow.dataset.

Training ranks do not use Spark: each rank lists the parquet files of the
training snapshot, takes every ``world_size``-th file starting at its rank,
and streams them as record batches through a shuffle buffer. The file layout
is handled in this module alone, so another reader can replace it behind
:class:`ShardReader`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds


class ShardReader:
    """Iterate over one rank's rows of a parquet folder in shuffled batches.

    Parameters
    ----------
    path : str
        Folder (local path or URI that pyarrow understands) of parquet files
        with a ``features`` column of ``list<float>`` (or ``list<list<float>>``
        for series, read with :meth:`arrow_batches`).
    rank, world_size : int
        This rank and the number of ranks; file ``i`` (in sorted order) goes
        to rank ``i % world_size``.
    shuffle_buffer_rows : int
        Rows held in memory for shuffling. A shard that fits is shuffled
        completely, and read from its files only in the first pass, then
        kept in memory. A larger one is read again in every pass and
        shuffled within windows of this size.
    """

    def __init__(self, path: str, rank: int, world_size: int, shuffle_buffer_rows: int):
        dataset = ds.dataset(path, format="parquet")
        files = sorted(dataset.files)
        self.files = files[rank::world_size]
        self.rows_per_rank = [
            _count_rows(files[r::world_size]) for r in range(world_size)
        ]
        self.rows = self.rows_per_rank[rank]
        self.shuffle_buffer_rows = shuffle_buffer_rows
        # A shard that fits the buffer is read once and kept for every epoch,
        # because the buffer keeps all of it in memory anyway.
        self._columns_in_memory: dict[str, list[pa.Array]] | None = None
        if self.rows <= shuffle_buffer_rows:
            self._columns_in_memory = {}

    def batches(self, batch_size: int, seed: int) -> Iterator[np.ndarray]:
        """Yield float32 arrays of shape (batch, n_features), shuffled by ``seed``.

        The last batch of each buffer window may be smaller than ``batch_size``.
        """
        for column in self.arrow_batches(batch_size, seed):
            yield list_column_to_numpy(column)

    def arrow_batches(self, batch_size: int, seed: int) -> Iterator[pa.Array]:
        """Yield the ``features`` column in shuffled Arrow slices of ``batch_size``.

        Rows come in the same order as from :meth:`batches`; a model family
        turns each slice into its input with ``batch_from_arrow``.
        """
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.files))
        buffer: list[pa.Array] = []
        buffered_rows = 0
        for index in order:
            for batch in self._file_columns(self.files[index]):
                buffer.append(batch)
                buffered_rows += len(batch)
                if buffered_rows >= self.shuffle_buffer_rows:
                    yield from _shuffled_batches(buffer, batch_size, rng)
                    buffer, buffered_rows = [], 0
        if buffer:
            yield from _shuffled_batches(buffer, batch_size, rng)

    def _file_columns(self, path: str):
        if self._columns_in_memory is None:
            return _read_file(path)
        if path not in self._columns_in_memory:
            self._columns_in_memory[path] = list(_read_file(path))
        return self._columns_in_memory[path]

    def read_all(self) -> pa.Array:
        """Return this rank's whole ``features`` column, files in sorted order.

        For stages that revisit every row by position, such as refinement;
        the column is held in memory.
        """
        chunks = [column for path in self.files for column in _read_file(path)]
        if not chunks:
            return pa.array([], type=pa.list_(pa.float32()))
        return pa.concat_arrays(chunks)


def _count_rows(files: list[str]) -> int:
    if not files:
        return 0
    return ds.dataset(files, format="parquet").count_rows()


def _read_file(path: str) -> Iterator[pa.Array]:
    dataset = ds.dataset(path, format="parquet")
    for record_batch in dataset.to_batches(columns=["features"]):
        if record_batch.num_rows:
            yield record_batch.column(0)


def list_column_to_numpy(column: pa.Array) -> np.ndarray:
    """Turn a ``list<float>`` Arrow column of equal-length rows into a 2-d array.

    Returns a writable float32 array of shape (rows, length): the Arrow buffers
    are read-only, and torch needs memory it may write to.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    rows = len(column)
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.array(values, dtype=np.float32).reshape(rows, -1)


def _shuffled_batches(buffer, batch_size, rng):
    rows = pa.concat_arrays(buffer)
    rows = rows.take(pa.array(rng.permutation(len(rows))))
    for start in range(0, len(rows), batch_size):
        yield rows.slice(start, batch_size)
