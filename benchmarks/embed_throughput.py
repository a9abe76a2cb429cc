"""Benchmark: the Spark embedding stage against plain torch on the same rows.

Writes ``rows`` random feature rows as a parquet table, then times, in one
process on the same cores:

- ``files``: :func:`deepclust.embed.embed_parquet`, the training job's
  embedding stage, whose Spark tasks read the parquet row groups with pyarrow;
- ``table``: :func:`deepclust.embed.embed_table` on ``spark.read.parquet``,
  where Spark decodes the parquet and hands the features over in Arrow;
- ``torch``: plain single-process torch with as many threads as Spark has
  cores, on the rows already in memory (no parquet read).

Both Spark runs write to Spark's no-op sink; their time includes job start-up
and the parquet read. Prints rows per second and the ratio to plain torch.

    .venv/bin/python benchmarks/embed_throughput.py --model mlp --rows 1000000
    .venv/bin/python benchmarks/embed_throughput.py --model conv --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from run_context import load_average, print_context

from deepclust.cli import build_session, configure_logging
from deepclust.embed import embed_parquet, embed_table
from deepclust.embed.spark import fixed_rows_to_list
from deepclust.models import ModelSpec, build_autoencoder
from deepclust.models.base import state_dict_to_bytes

# The MNIST configs' encoders: conf/mnist_mlp.yaml and conf/mnist_conv.yaml.
MODELS = {
    "mlp": ModelSpec("mlp", 784, (500, 500, 2000), 10),
    "conv": ModelSpec("conv", 784, (32, 64, 128), 10, input_shape=(1, 28, 28)),
}
PATHS = ("files", "table", "torch")


def write_table(features: np.ndarray, path: str, files: int) -> None:
    """Write ``id``, ``features`` parquet files of about equal size.

    Row groups hold 20,000 rows (63 MB), within Spark's default parquet block
    size of 128 MB. With one 125,000-row group per file, Spark's own reader
    ran out of its default 1 GiB driver heap in the ``table`` run.
    """
    os.makedirs(path)
    first = 0
    for index, part in enumerate(np.array_split(features, files)):
        ids = np.arange(first, first + len(part), dtype=np.int64)
        first += len(part)
        table = pa.table({"id": pa.array(ids), "features": fixed_rows_to_list(part)})
        pq.write_table(
            table,
            os.path.join(path, f"part-{index:04d}.parquet"),
            row_group_size=20_000,
        )


def time_spark(
    spark, path: str, spec, weights: bytes, stage_path: str, batch_rows: int
):
    """Return the seconds of one Spark embedding run into the no-op sink."""
    started = time.perf_counter()
    if stage_path == "files":
        embedded = embed_parquet(spark, path, spec, weights, batch_rows)
    else:
        embedded = embed_table(spark.read.parquet(path), spec, weights, batch_rows)
    embedded.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def time_torch(model, features: np.ndarray, threads: int, batch_rows: int) -> float:
    """Return the seconds plain torch takes to embed ``features``."""
    torch.set_num_threads(threads)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(features), batch_rows):
            model.embed(torch.from_numpy(features[start : start + batch_rows]))
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument(
        "--paths", nargs="+", choices=PATHS, default=list(PATHS), help="what to time"
    )
    args = parser.parse_args(argv)
    configure_logging()
    print_context()
    spark = build_session("deepclust-embed-benchmark")
    cores = spark.sparkContext.defaultParallelism

    spec = MODELS[args.model]
    torch.manual_seed(0)
    model = build_autoencoder(spec).eval()
    weights = state_dict_to_bytes(model)
    features = np.random.default_rng(0).random((args.rows, 784), dtype=np.float32)

    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "features")
        write_table(features, path, files=cores * 4)
        # A small first run starts the Python workers and imports torch in
        # them, as any earlier stage of the job would have done.
        warm = os.path.join(folder, "warm")
        write_table(features[:1000], warm, files=cores)
        time_spark(spark, warm, spec, weights, "files", args.batch_rows)
        for stage_path in args.paths:
            if stage_path == "torch":
                seconds[stage_path] = time_torch(
                    model, features, cores, args.batch_rows
                )
            else:
                seconds[stage_path] = time_spark(
                    spark, path, spec, weights, stage_path, args.batch_rows
                )
            load = load_average()
            print(f"{stage_path}: {seconds[stage_path]:.1f} s, load average {load}")
    spark.stop()

    print(f"{args.model} encoder, {args.rows} rows x 784, {cores} cores")
    for stage_path, value in seconds.items():
        ratio = ""
        if "torch" in seconds:
            ratio = f", {seconds['torch'] / value:.2f} x plain torch"
        print(f"{stage_path}: {args.rows / value:,.0f} rows/s ({value:.1f} s){ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
