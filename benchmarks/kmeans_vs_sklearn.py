"""Benchmark: the KMeans stage (MLlib) against scikit-learn on the same points.

Generates ``rows`` points in 10 dimensions around 10 Gaussian centres, writes
them as an ``embedding`` parquet table, and times deepclust's
:func:`deepclust.cluster.fit_kmeans` (Spark ``local[*]``, ``--n-init``
restarts, ``--init-mode`` seeding, reading the parquet table included) and
scikit-learn's ``KMeans`` (its default ``n_init="auto"``, one k-means++
start, on the points in memory) with the same ``max_iter``, and prints the
time and inertia of both.

Before timing, one fit on 10,000 rows warms the JVM, as the job's reading
and embedding stages have by the time it clusters. In local mode the
persisted vectors live in the driver's JVM: give it memory for 10,000,000
rows with ``--driver-memory 8g``.

    .venv/bin/python benchmarks/kmeans_vs_sklearn.py --rows 100000 1000000 10000000 \
        --driver-memory 8g
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
from run_context import load_average, print_context
from sklearn.cluster import KMeans

from deepclust.cli import build_session, configure_logging
from deepclust.cluster import fit_kmeans
from deepclust.config import ClusterConfig
from deepclust.embed.spark import fixed_rows_to_list


def make_points(rows: int, dims: int, k: int, seed: int) -> np.ndarray:
    """Return ``rows`` float32 points around ``k`` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(k, dims))
    labels = rng.integers(0, k, rows)
    return (centres[labels] + rng.normal(size=(rows, dims))).astype(np.float32)


def write_points(points: np.ndarray, folder: str, files: int) -> None:
    """Write points as ``id``, ``embedding`` parquet files."""
    os.makedirs(folder)
    for index, part in enumerate(np.array_split(points, files)):
        table = pa.table(
            {
                "id": pa.array(np.arange(len(part), dtype=np.int64)),
                "embedding": fixed_rows_to_list(part),
            }
        )
        pq.write_table(table, os.path.join(folder, f"part-{index:04d}.parquet"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dims", type=int, default=10)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--n-init", type=int, default=1, help="deepclust restarts")
    parser.add_argument(
        "--init-mode", choices=["k-means++", "k-means||"], default="k-means++"
    )
    parser.add_argument(
        "--driver-memory", default=None, help="spark.driver.memory, e.g. 8g"
    )
    args = parser.parse_args(argv)
    configure_logging()
    print_context()
    if args.driver_memory:
        # The driver JVM reads its heap size at launch, from the submit args.
        os.environ["PYSPARK_SUBMIT_ARGS"] = (
            f"--driver-memory {args.driver_memory} pyspark-shell"
        )
    spark = build_session("deepclust-kmeans-benchmark")
    settings = ClusterConfig(
        k=args.k,
        max_iter=args.max_iter,
        tol=args.tol,
        n_init=args.n_init,
        init_mode=args.init_mode,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "warm-up")
        write_points(make_points(10_000, args.dims, args.k, seed=1), path, files=2)
        fit_kmeans(spark.read.parquet(path), settings, seed=0, rows=10_000)
    print(
        "| rows | init mode | MLlib s | sklearn s | time ratio "
        "| MLlib inertia / sklearn | MLlib iterations | load average |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for rows in args.rows:
        points = make_points(rows, args.dims, args.k, seed=rows)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "points")
            write_points(points, path, files=max(2, rows // 500_000))
            embeddings = spark.read.parquet(path)
            started = time.perf_counter()
            fitted = fit_kmeans(embeddings, settings, seed=0, rows=rows)
            spark_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reference = KMeans(
            args.k, max_iter=args.max_iter, tol=args.tol, random_state=0
        ).fit(points)
        sklearn_seconds = time.perf_counter() - started
        print(
            f"| {rows} | {args.init_mode} | {spark_seconds:.2f} "
            f"| {sklearn_seconds:.2f} | {spark_seconds / sklearn_seconds:.1f} "
            f"| {fitted.inertia / reference.inertia_:.4f} | {fitted.iterations} "
            f"| {load_average()} |",
            flush=True,
        )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
