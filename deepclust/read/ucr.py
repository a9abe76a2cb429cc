"""Read UCR/UEA time-series archive files into series feature tables.

Two formats of the archive are supported:

* ``.ts`` (the sktime/aeon format): ``#`` comment lines, ``@key value``
  header lines up to ``@data``, then one series per line. Channels are
  separated by ``:``, values within a channel by ``,``, and with
  ``@classLabel true`` the class label follows the last ``:``. Series may
  differ in length, but the channels of one series must not.
* ``.tsv`` (the UCR 2018 format): one univariate series per line, the class
  label first, values separated by tabs; trailing ``NaN`` pad shorter series.

Files with ``@timeStamps true`` are not supported. A missing value (``?`` or
``NaN``) is accepted only as trailing padding; inside a series it is an error.
"""

from __future__ import annotations

import glob
import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from deepclust.errors import InputError

_logger = logging.getLogger(__name__)

SPLITS = ("all", "train", "test")
_MISSING = ("?", "nan", "NaN")


@dataclass(frozen=True)
class SeriesSet:
    """Series read from one or more archive files.

    Attributes
    ----------
    series : list of ndarray of shape (length, channels), float32
    labels : list of str, or None when the files have no class labels
    channels : int
    """

    series: list
    labels: list | None
    channels: int


def read_ts(path: str) -> SeriesSet:
    """Parse a ``.ts`` file.

    Raises
    ------
    InputError
        If the file is missing, its header is invalid or unsupported, or a
        data line does not parse. The message names the file and line number.
    """
    lines = _read_lines(path)
    header: dict[str, str] = {}
    data_start = None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not text.startswith("@"):
            raise _line_error(
                path, number, text, "a '#' comment or '@key value' header before @data"
            )
        key, _, value = text[1:].partition(" ")
        if key.lower() == "data":
            data_start = number
            break
        header[key.lower()] = value.strip()
    if data_start is None:
        raise InputError(
            f"Invalid .ts file {path!r}: no @data line found. Expected a header "
            "ending with @data, then one series per line."
        )
    if header.get("timestamps", "false").lower() == "true":
        raise InputError(
            f"Unsupported .ts file {path!r}: @timeStamps true. Expected series "
            "of plain values; convert the file to equally spaced values."
        )
    has_label, classes = _class_labels(path, header)
    declared = header.get("dimensions")

    series, labels = [], []
    for number, line in enumerate(lines[data_start:], start=data_start + 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        values, label = _parse_ts_line(path, number, text, has_label, classes)
        if declared is not None and values.shape[1] != int(declared):
            raise _line_error(
                path, number, text, f"{declared} channels as @dimensions declares"
            )
        if series and values.shape[1] != series[0].shape[1]:
            raise _line_error(
                path,
                number,
                text,
                f"{series[0].shape[1]} channels like the series before it",
            )
        series.append(values)
        labels.append(label)
    if not series:
        raise InputError(
            f"Invalid .ts file {path!r}: no series after @data. Expected one "
            "series per line."
        )
    return SeriesSet(series, labels if has_label else None, series[0].shape[1])


def read_tsv(path: str) -> SeriesSet:
    """Parse a UCR 2018 ``.tsv`` file: a label, then the values, tab-separated.

    Raises
    ------
    InputError
        If the file is missing or a line does not parse. The message names the
        file and line number.
    """
    series, labels = [], []
    for number, line in enumerate(_read_lines(path), start=1):
        text = line.strip()
        if not text:
            continue
        fields = text.split("\t")
        if len(fields) < 2:
            raise _line_error(path, number, text, "a label and values, tab-separated")
        values = _parse_values(path, number, text, fields[1:])
        series.append(values.reshape(-1, 1))
        labels.append(fields[0].strip())
    if not series:
        raise InputError(f"Invalid .tsv file {path!r}: it contains no series.")
    return SeriesSet(series, labels, 1)


def read_series_file(path: str) -> SeriesSet:
    """Parse a ``.ts`` or ``.tsv`` file, chosen by its extension."""
    if path.endswith(".ts"):
        return read_ts(path)
    if path.endswith(".tsv"):
        return read_tsv(path)
    raise InputError(
        f"Invalid archive file {path!r}: expected a .ts or .tsv file. Pass a "
        "file or folder of the UCR/UEA archive."
    )


def find_split_files(source: str, split: str) -> list[str]:
    """Return the archive files of ``split`` in a folder, TRAIN before TEST.

    ``source`` may also be a single ``.ts`` or ``.tsv`` file, returned as is.
    In a folder, ``<Name>_TRAIN.ts`` is preferred to ``<Name>_TRAIN.tsv``.

    Raises
    ------
    InputError
        If ``split`` is unknown or a requested file is missing.
    """
    if split not in SPLITS:
        raise InputError(
            f"Invalid split {split!r}: expected one of {', '.join(SPLITS)}."
        )
    if os.path.isfile(source):
        return [source]
    if not os.path.isdir(source):
        raise InputError(
            f"Archive path not found: {source!r}. Pass --source-dir with a folder "
            "that contains <Name>_TRAIN.ts and <Name>_TEST.ts, or one such file."
        )
    parts = ("TRAIN", "TEST") if split == "all" else (split.upper(),)
    files = []
    for part in parts:
        found = None
        for extension in ("ts", "tsv"):
            matches = sorted(glob.glob(os.path.join(source, f"*_{part}.{extension}")))
            if matches:
                found = matches[0]
                break
        if found is None:
            raise InputError(
                f"Missing {part} file in {source!r}: expected <Name>_{part}.ts or "
                f"<Name>_{part}.tsv. Copy it there or choose another split."
            )
        files.append(found)
    return files


def load_series(source: str, split: str = "all") -> SeriesSet:
    """Read and concatenate the archive files of a split."""
    sets = [read_series_file(path) for path in find_split_files(source, split)]
    channels = {s.channels for s in sets}
    if len(channels) > 1:
        raise InputError(
            f"Archive files in {source!r} differ in channel count: "
            f"{sorted(channels)}. Expected the same channels in TRAIN and TEST."
        )
    series = [item for s in sets for item in s.series]
    has_labels = all(s.labels is not None for s in sets)
    labels = [label for s in sets for label in s.labels] if has_labels else None
    return SeriesSet(series, labels, sets[0].channels)


def series_arrow_table(data: SeriesSet) -> pa.Table:
    """Build the canonical series table.

    Returns
    -------
    Table
        ``id`` (int64, 0-based position), ``features``
        (``list<list<float32>>``, time steps x channels) and, with labels,
        ``label`` (string, the class label as written in the file).
    """
    lengths = np.array([len(s) for s in data.series], dtype=np.int32)
    steps = int(lengths.sum())
    values = pa.array(
        np.concatenate([s.reshape(-1) for s in data.series]).astype(np.float32)
    )
    step_offsets = np.arange(0, (steps + 1) * data.channels, data.channels)
    series_offsets = np.concatenate([[0], np.cumsum(lengths)])
    step_lists = pa.ListArray.from_arrays(pa.array(step_offsets, pa.int32()), values)
    features = pa.ListArray.from_arrays(
        pa.array(series_offsets, pa.int32()), step_lists
    )
    columns = {
        "id": pa.array(np.arange(len(lengths), dtype=np.int64)),
        "features": features,
    }
    if data.labels is not None:
        columns["label"] = pa.array(data.labels, pa.string())
    return pa.table(columns)


def _read_lines(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise InputError(
            f"Archive file not found: {path!r}. Check --source-dir and the file "
            "name (<Name>_TRAIN.ts, <Name>_TEST.ts)."
        )
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read().splitlines()


def _class_labels(path, header):
    text = header.get("classlabel", "false").split()
    if not text or text[0].lower() not in ("true", "false"):
        raise InputError(
            f"Invalid .ts file {path!r}: @classLabel {header.get('classlabel')!r}. "
            "Expected '@classLabel true <labels...>' or '@classLabel false'."
        )
    has_label = text[0].lower() == "true"
    classes = set(text[1:]) if has_label and len(text) > 1 else None
    return has_label, classes


def _parse_ts_line(path, number, text, has_label, classes):
    fields = text.split(":")
    label = None
    if has_label:
        if len(fields) < 2:
            raise _line_error(path, number, text, "values, then ':' and a class label")
        label = fields.pop().strip()
        if classes is not None and label not in classes:
            raise _line_error(
                path,
                number,
                text,
                f"a class label from @classLabel ({' '.join(sorted(classes))}), "
                f"got {label!r}",
            )
    channels = [_parse_values(path, number, text, f.split(",")) for f in fields]
    lengths = {len(c) for c in channels}
    if len(lengths) > 1:
        raise _line_error(
            path,
            number,
            text,
            f"channels of the same length, got lengths {[len(c) for c in channels]}",
        )
    return np.stack(channels, axis=1), label


def _parse_values(path, number, text, fields):
    values = []
    for field in fields:
        item = field.strip()
        if item in _MISSING:
            values.append(math.nan)
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise _line_error(
                path, number, text, f"numbers separated by ',', got {item!r}"
            ) from None
    array = np.array(values, dtype=np.float32)
    missing = np.isnan(array)
    # Trailing missing values pad a shorter series; others are real gaps.
    real = len(array) - int(np.argmin(missing[::-1])) if not missing.all() else 0
    if real == 0:
        raise _line_error(path, number, text, "at least one value per channel")
    if missing[:real].any():
        raise _line_error(
            path,
            number,
            text,
            "no missing values inside a series (missing value at position "
            f"{int(np.argmax(missing[:real]))}); impute or drop that series",
        )
    return array[:real]


def _line_error(path, number, text, expected):
    excerpt = text if len(text) <= 60 else text[:57] + "..."
    return InputError(
        f"Invalid line {number} of {path!r}: expected {expected}. "
        f"The line starts {excerpt!r}; fix or remove it."
    )
