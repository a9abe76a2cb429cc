"""Benchmark: where the KMeans stage spends its time, step by step.

Writes the points of ``kmeans_vs_sklearn.py`` as a parquet table, warms the
JVM with one fit, then times each step of :func:`deepclust.cluster.fit_kmeans`
on its own, ``--repeats`` times:

- ``convert``: read the parquet and turn each array into an MLlib vector;
- ``convert and store``: the same pass with the vectors stored in memory;
- ``pass over stored``: one more pass, which only counts the stored vectors;
- ``draw sample`` and ``send sample``: draw ``--sample`` rows from the
  stored vectors, and move them to the driver;
- ``scikit-learn on sample``: the seeding fit on ``init_sample`` rows;
- ``MLlib Lloyd``: MLlib's iterations from that start, its norms pass
  included;
- ``scikit-learn on all rows``: the whole fit on the points in memory.

With ``--variants`` it also times storing the vectors serialised, handing
MLlib an unstored child of the stored vectors, and ``pyspark.ml`` KMeans
with its block solver.

    .venv/bin/python benchmarks/kmeans_parts.py --rows 1000000 --variants
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from kmeans_vs_sklearn import make_points, write_points
from pyspark.ml.clustering import KMeans as MLKMeans
from pyspark.ml.functions import array_to_vector
from pyspark.mllib.common import _java2py
from pyspark.sql import functions as F
from run_context import load_average, print_context
from sklearn.cluster import KMeans

from deepclust.cli import build_session, configure_logging
from deepclust.cluster.kmeans import (
    fit_kmeans,
    jvm_kmeans_model,
    mllib_kmeans,
    persisted_vectors,
    sample_centroids,
    sample_rows,
)
from deepclust.config import ClusterConfig


def timed(seconds: dict, name: str, step):
    """Run ``step()``, add its wall seconds under ``name`` and return its result."""
    started = time.perf_counter()
    result = step()
    seconds.setdefault(name, []).append(time.perf_counter() - started)
    return result


def one_repeat(spark, path, points, settings, args, seed, seconds) -> None:
    """Time every step once and append the seconds to ``seconds``."""
    jvm = spark.sparkContext._jvm
    levels = jvm.org.apache.spark.storage.StorageLevel
    to_vectors = jvm.org.apache.spark.ml.util.DatasetUtils.columnToOldVector
    table = spark.read.parquet(path)

    timed(seconds, "convert", lambda: to_vectors(table._jdf, "embedding").count())
    vectors = persisted_vectors(table, "embedding")
    timed(seconds, "convert and store", vectors.count)
    timed(seconds, "pass over stored", vectors.count)
    fraction = args.sample / len(points)
    drawn = timed(
        seconds,
        "draw sample",
        lambda: vectors.sample(False, fraction, seed).collect(),
    )
    timed(
        seconds,
        "send sample",
        lambda: _java2py(spark.sparkContext, drawn),
    )
    sample = sample_rows(spark, vectors, len(points), settings, seed)
    centroids = timed(
        seconds,
        "scikit-learn on sample",
        lambda: sample_centroids(sample, settings, seed),
    )

    def lloyd(data):
        kmeans = mllib_kmeans(spark, settings, seed)
        kmeans.setInitialModel(jvm_kmeans_model(spark, centroids))
        return kmeans.run(data)

    timed(seconds, "MLlib Lloyd", lambda: lloyd(vectors))
    if args.variants:
        child = vectors.toJavaRDD().coalesce(vectors.getNumPartitions()).rdd()
        timed(seconds, "MLlib Lloyd, unstored child", lambda: lloyd(child))
    vectors.unpersist(True)

    if args.variants:
        serialised = to_vectors(table._jdf, "embedding")
        serialised.persist(levels.MEMORY_ONLY_SER())
        timed(seconds, "convert and store serialised", serialised.count)
        timed(seconds, "pass over serialised", serialised.count)
        serialised.unpersist(True)
        frame = table.select(
            array_to_vector(F.col("embedding").cast("array<double>")).alias("x")
        )
        block = MLKMeans(
            k=settings.k,
            maxIter=settings.max_iter,
            tol=settings.tol,
            seed=seed,
            featuresCol="x",
            solver="block",
        )
        timed(seconds, "pyspark.ml KMeans, block solver", lambda: block.fit(frame))

    timed(
        seconds,
        "scikit-learn on all rows",
        lambda: KMeans(
            settings.k, max_iter=settings.max_iter, tol=settings.tol, random_state=0
        ).fit(points),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dims", type=int, default=10)
    parser.add_argument("--sample", type=int, default=50_000, help="rows drawn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args(argv)
    configure_logging()
    print_context()
    spark = build_session("deepclust-kmeans-parts")
    settings = ClusterConfig(k=args.k)
    points = make_points(args.rows, args.dims, args.k, seed=args.rows)
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "points")
        write_points(points, path, files=max(2, args.rows // 500_000))
        fit_kmeans(spark.read.parquet(path), settings, seed=0, rows=args.rows)
        for repeat in range(args.repeats):
            one_repeat(spark, path, points, settings, args, repeat, seconds)
    spark.stop()

    print(f"{args.rows} rows x {args.dims}, k={args.k}, load average {load_average()}")
    print("| step | seconds per repeat |")
    print("| --- | --- |")
    for name, values in seconds.items():
        print(f"| {name} | {' '.join(f'{v:.2f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
