"""Benchmark: the Spark embedding stage against plain torch on the same rows.

Writes ``rows`` random feature rows as a parquet table and times two runs.
First, deepclust's :func:`deepclust.embed.embed_table` writes its output to
Spark's no-op sink (``local[*]``). Second, plain single-process torch applies
the same encoder, with as many threads as Spark has cores, to the rows already
in memory. Prints rows per second of both and their ratio.

    .venv/bin/python benchmarks/embed_throughput.py --rows 1000000
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

from deepclust.cli import build_session, configure_logging
from deepclust.embed import embed_table
from deepclust.embed.spark import fixed_rows_to_list
from deepclust.models import ModelSpec, build_autoencoder
from deepclust.models.base import state_dict_to_bytes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500, 2000])
    parser.add_argument("--embedding-dim", type=int, default=10)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    args = parser.parse_args(argv)
    configure_logging()
    spark = build_session("deepclust-embed-benchmark")
    cores = spark.sparkContext.defaultParallelism

    spec = ModelSpec("mlp", args.dim, tuple(args.hidden), args.embedding_dim)
    torch.manual_seed(0)
    model = build_autoencoder(spec).eval()
    rng = np.random.default_rng(0)
    features = rng.random((args.rows, args.dim), dtype=np.float32)

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "features")
        os.makedirs(path)
        for index, part in enumerate(np.array_split(features, cores * 4)):
            table = pa.table(
                {
                    "id": pa.array(np.arange(len(part), dtype=np.int64)),
                    "features": fixed_rows_to_list(part),
                }
            )
            pq.write_table(table, os.path.join(path, f"part-{index:04d}.parquet"))
        df = spark.read.parquet(path)
        started = time.perf_counter()
        embed_table(df, spec, state_dict_to_bytes(model), args.batch_rows).write.format(
            "noop"
        ).mode("overwrite").save()
        spark_seconds = time.perf_counter() - started

    torch.set_num_threads(cores)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, args.rows, args.batch_rows):
            model.embed(torch.from_numpy(features[start : start + args.batch_rows]))
    torch_seconds = time.perf_counter() - started
    spark.stop()

    spark_rate = args.rows / spark_seconds
    torch_rate = args.rows / torch_seconds
    print(
        f"rows {args.rows} x {args.dim}, encoder {args.hidden} -> "
        f"{args.embedding_dim}, {cores} cores: Spark {spark_rate:,.0f} rows/s "
        f"({spark_seconds:.1f} s), plain torch {torch_rate:,.0f} rows/s "
        f"({torch_seconds:.1f} s), ratio {spark_rate / torch_rate:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
