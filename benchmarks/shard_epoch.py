"""Benchmark: one training epoch's data path, from parquet files or from memory.

Writes the MNIST test split as 2 parquet files, then times epochs of
:class:`deepclust.read.shards.ShardReader` batches of 256 rows turned into
tensors and shifted by up to 2 pixels, as a training rank prepares them:

- ``from memory``: ``shuffle_buffer_rows`` above the shard's rows, so the
  reader decodes the files in the first epoch and keeps the rows;
- ``from files``: ``shuffle_buffer_rows`` one row below the shard, so the
  reader decodes the files again in every epoch.

Prints the median and first epoch of each, with plain torch on the pixels
in memory for comparison.

    .venv/bin/python benchmarks/shard_epoch.py --epochs 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import pyarrow.parquet as pq
import torch
from run_context import load_average, print_context

from deepclust.read.prepare import load_source, to_arrow_table
from deepclust.read.shards import ShardReader, list_column_to_numpy
from deepclust.train.augment import augment_images

IMAGE_SHAPE = (1, 28, 28)


def reader_epochs(path: str, buffer_rows: int, epochs: int) -> list[float]:
    """Return the wall seconds of each epoch through a :class:`ShardReader`."""
    reader = ShardReader(path, 0, 1, buffer_rows)
    generator = torch.Generator().manual_seed(0)
    seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        for column in reader.arrow_batches(256, epoch):
            batch = torch.from_numpy(list_column_to_numpy(column))
            augment_images(batch, IMAGE_SHAPE, 2, 0.0, generator)
        seconds.append(time.perf_counter() - started)
    return seconds


def memory_epochs(features, epochs: int) -> list[float]:
    """Return the wall seconds of each epoch over a tensor already in memory."""
    pixels = torch.from_numpy(features)
    generator = torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(len(pixels))
        for start in range(0, len(pixels), 256):
            augment_images(
                pixels[order[start : start + 256]], IMAGE_SHAPE, 2, 0.0, generator
            )
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    print_context()
    torch.set_num_threads(2)
    features, labels = load_source("mnist")
    rows = len(features)
    table = to_arrow_table(features, labels)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for index in range(2):
            half = table.slice(index * (rows // 2), rows // 2)
            pq.write_table(half, os.path.join(folder, f"part-{index}.parquet"))
        results["from memory"] = reader_epochs(folder, rows + 1, args.epochs)
        results["from files"] = reader_epochs(folder, rows - 1, args.epochs)
    results["plain torch, pixels in memory"] = memory_epochs(features, args.epochs)

    print(f"{rows} rows, {args.epochs} epochs, load average {load_average()}")
    print("| data path | median epoch s | first epoch s |")
    print("| --- | --- | --- |")
    for name, seconds in results.items():
        print(f"| {name} | {statistics.median(seconds):.3f} | {seconds[0]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
