"""Convert public data sets into canonical parquet feature tables.

Sources:

* ``mnist``: the MNIST IDX files (``t10k-images-idx3-ubyte[.gz]`` and
  ``t10k-labels-idx1-ubyte[.gz]``), pixels scaled to [0, 1];
* ``digits``: scikit-learn's 8x8 digits, pixels scaled to [0, 1];
* ``iris``: scikit-learn's iris, the four measurements in centimetres;
* ``ucr``: a UCR/UEA archive folder of ``.ts`` or ``.tsv`` files, written as a
  series table (:mod:`deepclust.read.ucr`).

Row ids are the 0-based position in the source, so they are stable across runs.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct

import numpy as np
import pyarrow as pa
from pyspark.sql import SparkSession

from deepclust.errors import InputError
from deepclust.storage import path_exists

_logger = logging.getLogger(__name__)

SOURCES = ("mnist", "digits", "iris", "ucr")
MNIST_IMAGES = "t10k-images-idx3-ubyte"
MNIST_LABELS = "t10k-labels-idx1-ubyte"
DEFAULT_MNIST_DIR = os.path.join("data", "mnist")

# IDX type codes (third byte of the magic number) to numpy dtypes, big-endian.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Raises
    ------
    InputError
        If the file is missing, its magic number is not an IDX one, or its
        size does not match the dimensions in its header.
    """
    if not os.path.isfile(path):
        raise InputError(
            f"IDX file not found: {path!r}. Pass --source-dir with the folder that "
            f"contains {MNIST_IMAGES}.gz and {MNIST_LABELS}.gz."
        )
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"Cannot read IDX file {path!r}: {exc}.") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise InputError(
            f"Invalid IDX file {path!r}: expected a magic number 0x0000TTNN, got "
            f"{data[:4].hex() or 'an empty file'}. Check that it is an "
            "uncorrupted IDX file."
        )
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise InputError(
            f"Invalid IDX file {path!r}: the header declares shape {shape} "
            f"({expected} bytes of data), but the file contains {len(data) - header}. "
            "The file is truncated or corrupted; copy it again."
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def load_source(name: str, source_dir: str | None = None):
    """Load a named source as ``(features, labels)`` numpy arrays.

    Returns
    -------
    features : ndarray of shape (n_rows, n_features), float32
    labels : ndarray of shape (n_rows,), int64
    """
    if name == "mnist":
        folder = source_dir or DEFAULT_MNIST_DIR
        images = read_idx(_find_idx(folder, MNIST_IMAGES))
        labels = read_idx(_find_idx(folder, MNIST_LABELS))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise InputError(
                f"MNIST files in {folder!r} do not match: images {images.shape}, "
                f"labels {labels.shape}. Expected (n, 28, 28) images and n labels."
            )
        features = images.reshape(len(images), -1).astype(np.float32) / 255.0
        return features, labels.astype(np.int64)
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)
    if name == "iris":
        from sklearn.datasets import load_iris

        bunch = load_iris()
        return bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    raise InputError(
        f"Invalid source {name!r}: expected one of {', '.join(SOURCES)}. "
        "Pick a source that `deepclust prepare --help` lists."
    )


def to_arrow_table(features: np.ndarray, labels: np.ndarray | None) -> pa.Table:
    """Build the canonical Arrow table: ``id``, ``features`` and ``label``."""
    n_rows, n_features = features.shape
    flat = pa.array(np.ascontiguousarray(features, dtype=np.float32).ravel())
    offsets = pa.array(np.arange(0, (n_rows + 1) * n_features, n_features, np.int32))
    columns = {
        "id": pa.array(np.arange(n_rows, dtype=np.int64)),
        "features": pa.ListArray.from_arrays(offsets, flat),
    }
    if labels is not None:
        columns["label"] = pa.array(labels.astype(np.int64))
    return pa.table(columns)


def prepare_table(
    spark: SparkSession,
    name: str,
    output_path: str,
    source_dir: str | None = None,
    overwrite: bool = False,
    num_files: int = 4,
    split: str = "all",
) -> int:
    """Write a named source as a parquet feature table and return its row count.

    The table is written with Spark, so ``output_path`` may be on any file
    system that Spark can write to. ``split`` applies to ``ucr`` only: the
    archive's ``all`` (TRAIN rows, then TEST rows), ``train`` or ``test``.

    Raises
    ------
    InputError
        If the source is unknown or unreadable, or ``output_path`` exists and
        ``overwrite`` is false.
    """
    if name == "ucr":
        return _prepare_series(
            spark, source_dir, split, output_path, overwrite, num_files
        )
    features, labels = load_source(name, source_dir)
    if not overwrite and path_exists(spark, output_path):
        raise InputError(
            f"Output path {output_path!r} already exists. Pass --overwrite to "
            "replace it, or choose another path."
        )
    df = spark.createDataFrame(to_arrow_table(features, labels))
    df.repartition(num_files).sortWithinPartitions("id").write.mode(
        "overwrite"
    ).parquet(output_path)
    _logger.info(
        "prepare: wrote %d rows x %d features of %s to %s",
        len(features),
        features.shape[1],
        name,
        output_path,
    )
    return len(features)


def _prepare_series(spark, source_dir, split, output_path, overwrite, num_files) -> int:
    from deepclust.read.ucr import load_series, series_arrow_table

    if source_dir is None:
        raise InputError(
            "Missing --source-dir for source 'ucr': expected a folder with "
            "<Name>_TRAIN.ts and <Name>_TEST.ts, e.g. data/ucr/Trace."
        )
    data = load_series(source_dir, split)
    if not overwrite and path_exists(spark, output_path):
        raise InputError(
            f"Output path {output_path!r} already exists. Pass --overwrite to "
            "replace it, or choose another path."
        )
    df = spark.createDataFrame(series_arrow_table(data))
    df.repartition(num_files).sortWithinPartitions("id").write.mode(
        "overwrite"
    ).parquet(output_path)
    lengths = [len(s) for s in data.series]
    _logger.info(
        "prepare: wrote %d series (%d channel(s), %d to %d steps) of %s to %s",
        len(lengths),
        data.channels,
        min(lengths),
        max(lengths),
        source_dir,
        output_path,
    )
    return len(lengths)


def _find_idx(folder: str, stem: str) -> str:
    for candidate in (stem + ".gz", stem):
        full = os.path.join(folder, candidate)
        if os.path.isfile(full):
            return full
    return os.path.join(folder, stem + ".gz")
