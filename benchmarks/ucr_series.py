"""Cluster four UCR/UEA sets with the rnn family and two baselines, side by side.

For each set in ``data/ucr`` (TRAIN and TEST series together), the script
runs, in the same process:

* the deepclust training job (``conf/trace_rnn.yaml`` with ``cluster.k`` set
  to the number of classes), which reports NMI and ARI against the labels;
* scikit-learn KMeans (``n_init=10``) on the z-normalised raw series,
  flattened, for sets whose series all have the same length;
* tslearn's ``TimeSeriesKMeans`` with DTW on the z-normalised series, which
  accepts different lengths (install with ``pip install -e ".[bench]"``).

Run from the repository root; it prints a Markdown table:

    python benchmarks/ucr_series.py [--sets Trace GunPoint] [--set train.epochs=30]

Labels are used only for scoring.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from deepclust.cli import build_session, configure_logging
from deepclust.read.prepare import prepare_table
from deepclust.read.ucr import load_series
from pipelines.train import run_training_job

SETS = ("Trace", "GunPoint", "BasicMotions", "PickupGestureWiimoteZ")
_logger = logging.getLogger("benchmark")


def z_normalize(series: np.ndarray) -> np.ndarray:
    """Z-normalise one ``(length, channels)`` series per channel."""
    std = series.std(axis=0, keepdims=True)
    return (series - series.mean(axis=0, keepdims=True)) / np.where(std > 0, std, 1)


def score(labels, assignment) -> tuple[float, float]:
    """Return ``(NMI, ARI)`` of an assignment against the labels."""
    return (
        normalized_mutual_info_score(labels, assignment),
        adjusted_rand_score(labels, assignment),
    )


def euclidean_kmeans(series, labels, k, seed):
    """KMeans on flattened z-normalised series; None for unequal lengths."""
    if len({len(s) for s in series}) > 1:
        return None
    flat = np.stack([z_normalize(s).reshape(-1) for s in series])
    model = KMeans(k, n_init=10, random_state=seed).fit(flat)
    return score(labels, model.labels_)


def dtw_kmeans(series, labels, k, seed):
    """tslearn TimeSeriesKMeans with DTW; series may differ in length."""
    from tslearn.clustering import TimeSeriesKMeans
    from tslearn.utils import to_time_series_dataset

    dataset = to_time_series_dataset([z_normalize(s) for s in series])
    model = TimeSeriesKMeans(
        n_clusters=k, metric="dtw", max_iter=10, n_init=2, random_state=seed
    )
    return score(labels, model.fit_predict(dataset))


def deepclust_run(spark, name, k, folder, overrides):
    """Prepare the set and run the training job; return ``(NMI, ARI, seconds)``."""
    table = os.path.join(folder, "tables", name)
    prepare_table(spark, "ucr", table, os.path.join("data", "ucr", name))
    # The job takes its tracking store from the config file or this variable,
    # not from --set overrides.
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
    started = time.perf_counter()
    result = run_training_job(
        spark,
        "conf/trace_rnn.yaml",
        [
            f"data.path={table}",
            f"output.path={os.path.join(folder, 'out', name)}",
            f"cluster.k={k}",
            *overrides,
        ],
    )
    seconds = time.perf_counter() - started
    return result.metrics["nmi"], result.metrics["ari"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dtw", action="store_true", help="skip DTW k-means")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override for the deepclust runs, e.g. train.epochs=30",
    )
    args = parser.parse_args()
    configure_logging()
    spark = build_session("deepclust-benchmark-ucr", "local[2]")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="ucr-bench-") as folder:
            for name in args.sets:
                data = load_series(os.path.join("data", "ucr", name))
                labels = np.array(data.labels)
                k = len(set(data.labels))
                overrides = [f"seed={args.seed}", *args.overrides]
                deep = deepclust_run(spark, name, k, folder, overrides)
                started = time.perf_counter()
                euclid = euclidean_kmeans(data.series, labels, k, args.seed)
                dtw = None if args.no_dtw else dtw_kmeans(data.series, labels, k, 0)
                _logger.info(
                    "%s baselines: %.1f s", name, time.perf_counter() - started
                )
                rows.append((name, len(labels), k, deep, euclid, dtw))
    finally:
        spark.stop()
    print(format_table(rows))


def format_table(rows) -> str:
    """Format the results as a Markdown table."""

    def pair(value):
        return "n/a | n/a" if value is None else f"{value[0]:.3f} | {value[1]:.3f}"

    lines = [
        "| set | series | k | rnn NMI | rnn ARI | rnn s | KMeans NMI | KMeans ARI "
        "| DTW NMI | DTW ARI |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, count, k, deep, euclid, dtw in rows:
        lines.append(
            f"| {name} | {count} | {k} | {deep[0]:.3f} | {deep[1]:.3f} | "
            f"{deep[2]:.0f} | {pair(euclid)} | {pair(dtw)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
