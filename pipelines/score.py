"""The scoring job: assign a table's rows to the clusters of a registered model.

Output layout, one Hive-style partition per run date::

    <output>/date=YYYY-MM-DD/   id, cluster (int), distance (double),
                                model_version (int, null outside the registry)

The partition is written into a hidden staging folder beside it, counted, and
then swapped in with :func:`deepclust.storage.publish`. A rerun for a date
replaces that date's folder only; a run that fails leaves every date's earlier
output as it was.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from deepclust.cluster import assign_clusters
from deepclust.config import JobConfig, load_config
from deepclust.embed import embed_table
from deepclust.errors import InputError, invalid
from deepclust.registry import CHAMPION, resolve_model_uri
from deepclust.score.drift import cluster_shares, population_stability_index
from deepclust.score.inputs import ScoringModel, load_cluster_model, read_scoring_input
from deepclust.storage import (
    delete_path,
    paths_overlap,
    publish,
    qualify,
    staging_path,
)
from deepclust.track import StageTimer, job_run, resolve_tracking_uri
from deepclust.track.mlflow_run import log_json

_logger = logging.getLogger("deepclust.pipeline")

PARTITION_COLUMN = "date"


@dataclass(frozen=True)
class ScoreResult:
    """Result of a finished scoring job.

    Attributes
    ----------
    run_id : str
        MLflow run id of the scoring run.
    model_uri : str
        The model URI as given.
    model_version : int or None
        The registered version used; None outside the registry.
    partition_path : str
        Qualified URI of the date's partition folder.
    metrics : dict
        ``rows_in``, ``rows_out``, ``mean_distance``, ``drift_psi`` and
        ``cluster_share_<c>`` for each cluster ``c``.
    """

    run_id: str
    model_uri: str
    model_version: int | None
    partition_path: str
    metrics: dict


def run_scoring_job(
    spark: SparkSession,
    config_path: str,
    input_path: str,
    output_path: str,
    run_date: str,
    model_uri: str | None = None,
    overrides: list[str] = (),
) -> ScoreResult:
    """Score ``input_path`` with a registered model into ``output_path``.

    Parameters
    ----------
    config_path : str
        YAML config; the job reads ``registry``, ``score``, ``embed`` and
        ``tracking`` from it.
    input_path : str
        Parquet table with ``id`` and ``features`` (see ``deepclust.read``).
    output_path : str
        Root folder of the date-partitioned assignments.
    run_date : str
        ``YYYY-MM-DD``; names the partition that this run replaces.
    model_uri : str, optional
        Default ``models:/<registry.model_name>@champion``.
    overrides : list of str
        ``section.key=value`` items applied over the config file.

    Raises
    ------
    ConfigError
        For a bad config, before any MLflow run starts.
    InputError
        For a bad date, a model URI or alias that does not exist, or an input
        table that is unreadable, empty or does not match the model's
        signature. The MLflow run ends FAILED and nothing is written.
    """
    config = load_config(config_path, list(overrides))
    uri = model_uri or f"models:/{config.registry.model_name}@{CHAMPION}"
    tracking_uri = resolve_tracking_uri(config.tracking.uri)
    with job_run(
        tracking_uri,
        config.tracking.experiment,
        f"score {run_date}",
        tags={"deepclust.job": "score"},
    ) as run:
        mlflow.log_params(
            {
                "model_uri": uri,
                "input_path": input_path,
                "output_path": output_path,
                "run_date": run_date,
            }
        )
        date = parse_run_date(run_date)
        if paths_overlap(spark, output_path, input_path):
            raise InputError(
                f"Invalid --output: expected a folder outside --input "
                f"{input_path!r}, got {output_path!r}, which is that folder, "
                "lies inside it or contains it. The scores would mix with the "
                "rows to score. Choose another --output."
            )
        loaded = load_cluster_model(resolve_model_uri(uri))
        _log_model_version(loaded)
        return _score(spark, config, loaded, input_path, output_path, date, run)


def parse_run_date(text: str) -> str:
    """Return ``text`` if it is an ISO date ``YYYY-MM-DD``.

    Raises
    ------
    InputError
        For any other form.
    """
    try:
        parsed = datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.isoformat() != text:
        raise invalid(
            "run date",
            text,
            "an ISO date YYYY-MM-DD",
            "Pass --date like 2026-01-31.",
        )
    return text


def _score(spark, config: JobConfig, loaded, input_path, output_path, date, run):
    timer = StageTimer()
    with timer.stage("read") as stage:
        df, rows_in = read_scoring_input(spark, input_path, loaded)
        stage["rows"] = rows_in

    partition = f"{qualify(spark, output_path)}/{PARTITION_COLUMN}={date}"
    staging = staging_path(spark, partition)
    # Spark warns when it reads a folder whose name starts with a dot, as the
    # staging folder's does, so the rows go one level below it.
    staged = f"{staging}/{PARTITION_COLUMN}={date}"
    try:
        with timer.stage("score") as stage:
            assignments(df, loaded, config.embed.batch_rows).write.parquet(staged)
            counts, distance_sum = _cluster_counts(spark.read.parquet(staged))
            rows_out = sum(counts)
            stage["rows"] = rows_out
        if rows_out != rows_in:
            raise RuntimeError(
                f"Scoring produced {rows_out} rows from {rows_in}; every row must "
                "come out once. The earlier output is kept. This is a bug in "
                "deepclust; please report it."
            )
        with timer.stage("publish"):
            # NOTE: runs for the same date are not serialized; if two overlap,
            # the later publish wins and the earlier run's rows are dropped.
            publish(spark, staged, partition)
    finally:
        delete_path(spark, staging)

    metrics = _health_metrics(loaded, counts, distance_sum, rows_in)
    _check_drift(metrics["drift_psi"], config.score.drift_threshold, loaded)
    mlflow.log_metrics(metrics)
    for name, seconds in timer.seconds.items():
        mlflow.log_metric(f"seconds_{name}", seconds)
    _logger.info("output: %s", partition)
    return ScoreResult(
        run.info.run_id, loaded.ref.uri, loaded.ref.version, partition, metrics
    )


def assignments(df: DataFrame, loaded: ScoringModel, batch_rows: int) -> DataFrame:
    """Embed and assign ``df`` with the model's weights and centroids.

    The same :func:`embed_table` and :func:`assign_clusters` as training, so
    a row gets the cluster that training gave it.

    Returns
    -------
    DataFrame
        ``id``, ``cluster`` (int), ``distance`` (double), ``model_version``
        (int, null for a model outside the registry).
    """
    model = loaded.model
    embeddings = embed_table(df, model.spec, model.weights, batch_rows)
    return assign_clusters(embeddings, model.centroids).withColumn(
        "model_version", F.lit(loaded.ref.version).cast("int")
    )


def _cluster_counts(written: DataFrame) -> tuple[list[int], float]:
    rows = written.groupBy("cluster").agg(
        F.count(F.lit(1)).alias("rows"), F.sum("distance").alias("distance")
    )
    collected = rows.collect()
    by_cluster = {row["cluster"]: row["rows"] for row in collected}
    distance_sum = float(sum(row["distance"] for row in collected))
    k = max(by_cluster, default=-1) + 1
    return [int(by_cluster.get(c, 0)) for c in range(k)], distance_sum


def _health_metrics(loaded, counts, distance_sum, rows_in) -> dict:
    k = len(loaded.model.centroids)
    counts = counts + [0] * (k - len(counts))
    shares = cluster_shares(counts)
    training = loaded.model.training_shares
    metrics = {
        "rows_in": float(rows_in),
        "rows_out": float(sum(counts)),
        "mean_distance": distance_sum / sum(counts),
        "drift_psi": population_stability_index(training, shares),
    }
    for cluster, share in enumerate(shares):
        metrics[f"cluster_share_{cluster}"] = float(share)
    log_json(
        {
            "clusters": list(range(k)),
            "scoring_rows": counts,
            "scoring_shares": shares,
            "training_rows": loaded.model.sizes,
            "training_shares": training,
        },
        "cluster_shares.json",
    )
    return metrics


def _check_drift(psi: float, threshold: float, loaded: ScoringModel) -> None:
    if psi > threshold:
        mlflow.set_tag("deepclust.drift", "above_threshold")
        _logger.warning(
            "score: cluster shares drifted from training: PSI %.4f > "
            "score.drift_threshold %.4f for model %s (training run %s); "
            "see cluster_shares.json in the scoring run and consider retraining",
            psi,
            threshold,
            loaded.ref.uri,
            loaded.ref.run_id,
        )


def _log_model_version(loaded: ScoringModel) -> None:
    ref = loaded.ref
    mlflow.log_params(
        {
            "model_name": ref.name,
            "model_version": ref.version,
            "training_run_id": ref.run_id,
        }
    )
    if ref.version is not None:
        mlflow.log_metric("model_version", ref.version)
    _logger.info(
        "score: model %s is version %s of %r, trained in run %s",
        ref.uri,
        ref.version,
        ref.name,
        ref.run_id,
    )
