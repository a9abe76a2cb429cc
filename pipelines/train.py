"""The training job: read, train, embed, cluster, evaluate, track.

Everything is written under a staging folder beside ``output.path`` and moved
into place only after every stage succeeded, so a failed job leaves the
earlier output as it was. Output layout::

    <output.path>/embeddings/   id, embedding (array<float>)
    <output.path>/assignments/  id, cluster (int), distance (double)
    <output.path>/centroids/    cluster (int), centroid (array<double>), size (long)
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
import yaml
from pyspark.ml.functions import array_to_vector
from pyspark.ml.stat import Summarizer
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepclust.cluster import assign_clusters, fit_kmeans
from deepclust.config import (
    JobConfig,
    apply_overrides,
    parse_config,
    read_yaml,
)
from deepclust.embed import embed_parquet
from deepclust.errors import ConfigError, InputError
from deepclust.evaluate import evaluate_assignments
from deepclust.models import ModelSpec, check_spec
from deepclust.read import TableSummary, read_feature_table
from deepclust.refine.distributed import refine_clusters
from deepclust.registry import register_trained_model
from deepclust.storage import (
    delete_path,
    path_exists,
    paths_overlap,
    publish,
    qualify,
    staging_path,
)
from deepclust.track import StageTimer, job_run, resolve_tracking_uri
from deepclust.track.images import log_image_artifacts
from deepclust.track.mlflow_run import log_bytes, log_json, log_loss_curve
from deepclust.track.series_plots import log_series_plots
from deepclust.train import train_autoencoder
from deepclust.train.distributed import write_snapshot

_logger = logging.getLogger("deepclust.pipeline")


@dataclass(frozen=True)
class JobResult:
    """Outputs and figures of a finished training job.

    Attributes
    ----------
    run_id : str
        MLflow run id.
    metrics : dict
        Final metrics: ``silhouette``, ``inertia`` and, with labels, ``acc``,
        ``nmi``, ``ari``.
    seconds : dict
        Wall seconds per stage.
    output_path : str
        Qualified URI of the output folder.
    """

    run_id: str
    metrics: dict
    seconds: dict
    output_path: str


def run_training_job(
    spark: SparkSession, config_path: str, overrides: list[str] = ()
) -> JobResult:
    """Run the training job described by a YAML config file.

    Parameters
    ----------
    config_path : str
        Path of the YAML config (see ``conf/``).
    overrides : list of str
        ``section.key=value`` items applied over the file.

    Raises
    ------
    ConfigError, InputError
        For a bad config or feature table, before any output is written.
    TrainingError
        With the failing rank's error.

    In every case the MLflow run is marked FAILED and no output is written.
    """
    raw = _read_raw_config(config_path)
    with _training_run(raw, config_path, overrides) as run:
        config = parse_config(apply_overrides(raw, list(overrides)))
        mlflow.log_params(config.flat_params())
        mlflow.log_text(yaml.safe_dump(config.to_dict()), "config/effective.yaml")
        return _run_stages(spark, config, run.info.run_id)


def check_training_config(config_path: str, overrides: list[str] = ()) -> JobConfig:
    """Read and check a training config without Spark.

    The command line calls this before it starts Spark, so that a typo fails
    in a second. A bad config ends a FAILED MLflow run, as in the job.

    Raises
    ------
    ConfigError, InputError
        For an unreadable or invalid config.
    """
    raw = _read_raw_config(config_path)
    try:
        return parse_config(apply_overrides(raw, list(overrides)))
    except ConfigError:
        with _training_run(raw, config_path, overrides):
            raise


@contextmanager
def _training_run(raw: dict, config_path: str, overrides):
    """Open the job's MLflow run from the tracking keys of a raw config."""
    try:
        merged = apply_overrides(raw, list(overrides))
    except ConfigError:
        # The caller raises it again inside the run, which marks it FAILED.
        merged = raw
    tracking = (
        merged.get("tracking") if isinstance(merged.get("tracking"), dict) else {}
    )
    uri = resolve_tracking_uri(_string_or_none(tracking.get("uri")))
    experiment = _string_or_none(tracking.get("experiment")) or "deepclust"
    run_name = _string_or_none(tracking.get("run_name"))
    with job_run(uri, experiment, run_name, tags={"deepclust.job": "train"}) as run:
        if os.path.isfile(config_path):
            mlflow.log_artifact(config_path, artifact_path="config")
        yield run


def _run_stages(spark: SparkSession, config: JobConfig, run_id: str) -> JobResult:
    output_path = qualify(spark, config.output.path)
    if paths_overlap(spark, config.output.path, config.data.path):
        raise InputError(
            f"Invalid output.path: expected a folder outside data.path "
            f"{config.data.path!r}, got {config.output.path!r}, which is that "
            "folder, lies inside it or contains it. Publishing the output "
            "there would replace the feature table. Choose another output.path."
        )
    if path_exists(spark, output_path) and not config.output.overwrite:
        raise InputError(
            f"Output path {config.output.path!r} already exists. Set "
            "output.overwrite: true to replace it, or choose another output.path."
        )
    timer = StageTimer()
    staging = staging_path(spark, output_path)
    try:
        metrics = _stages_into(spark, config, staging, timer)
        delete_path(spark, f"{staging}/_train")
        publish(spark, staging, output_path)
    finally:
        delete_path(spark, staging)
    # Registered only once the outputs are in place, so that no version
    # points at a run whose outputs were never written.
    if config.registry.enabled:
        register_trained_model(
            spark, run_id, config.registry.model_name, config.data.path
        )

    for name, seconds in timer.seconds.items():
        mlflow.log_metric(f"seconds_{name}", seconds)
    mlflow.log_metrics(metrics)
    log_json(
        {"run_id": run_id, "metrics": metrics, "seconds": timer.seconds},
        "summary.json",
    )
    _logger.info("output: %s", output_path)
    return JobResult(run_id, metrics, dict(timer.seconds), output_path)


def _stages_into(spark, config: JobConfig, staging: str, timer: StageTimer) -> dict:
    with timer.stage("read") as stage:
        df, summary = read_feature_table(spark, config.data.path)
        stage["rows"] = summary.rows
    check_family_fits_table(config, summary)
    check_table_fits_config(config, summary)
    mlflow.log_metrics({"rows": summary.rows, "feature_dim": summary.feature_dim})

    with timer.stage("train") as stage:
        spec = _model_spec(df, config, summary)
        check_spec(spec)
        snapshot = f"{staging}/_train/snapshot"
        num_files = config.train.num_processes * config.train.shards_per_process
        write_snapshot(df, snapshot, num_files)
        result = train_autoencoder(
            spark,
            snapshot,
            spec,
            config.train,
            config.seed,
            error_dir=f"{staging}/_train/errors",
            image_shape=config.data.image_shape,
        )
        stage["rows"] = sum(result.rows_per_rank)
    _log_training(spec, result)

    # With refinement, the KMeans stage's outputs are intermediate: they seed
    # the refinement and stay in the staging folder.
    refining = config.refine.method != "none"
    first = f"{staging}/_train" if refining else staging
    with timer.stage("embed") as stage:
        embeddings = _embed_into(
            df, spec, result.weights, config, f"{first}/embeddings"
        )
        stage["rows"] = _check_rows("embed", embeddings.count(), summary.rows)

    with timer.stage("cluster") as stage:
        fitted = fit_kmeans(embeddings, config.cluster, config.seed, summary.rows)
        assignments = _assign_into(embeddings, fitted.centroids, f"{first}/assignments")
        stage["rows"] = _check_rows("cluster", assignments.count(), summary.rows)

    labels = df.select("id", "label") if summary.has_label else None
    model, weights, centroids = result.model, result.weights, fitted.centroids
    metrics = {"kmeans_iterations": float(fitted.iterations)}
    if refining:
        before = evaluate_assignments(assignments, embeddings, labels)
        metrics.update({f"kmeans_{name}": value for name, value in before.items()})
        metrics["kmeans_inertia"] = fitted.inertia
        with timer.stage("refine") as stage:
            refined = refine_clusters(
                spark,
                snapshot,
                spec,
                result.weights,
                fitted.centroids,
                config.train,
                config.refine,
                config.seed,
                error_dir=f"{staging}/_train/errors",
                image_shape=config.data.image_shape,
            )
            model, weights = refined.model, refined.weights
            centroids = refined.centroids
            embeddings = _embed_into(df, spec, weights, config, f"{staging}/embeddings")
            _check_rows("refine", embeddings.count(), summary.rows)
            assignments = _assign_into(embeddings, centroids, f"{staging}/assignments")
            stage["rows"] = _check_rows("refine", assignments.count(), summary.rows)
        _log_refinement(refined)
        log_bytes(result.weights, "model/pretrained.pt")
        inertia = assignments.select(F.sum(F.col("distance") ** 2)).first()[0]
    else:
        inertia = fitted.inertia
    log_bytes(weights, "model/autoencoder.pt")
    sizes = _write_centroids(spark, assignments, centroids, staging)

    with timer.stage("evaluate") as stage:
        metrics.update(evaluate_assignments(assignments, embeddings, labels))
        stage["rows"] = summary.rows
    if config.data.image_shape is not None:
        log_image_artifacts(
            df, assignments, model, config.data.image_shape, sizes, config.seed
        )
    metrics.update(
        inertia=float(inertia),
        smallest_cluster=float(min(sizes)),
        largest_cluster=float(max(sizes)),
        empty_clusters=float(sizes.count(0)),
        clusters=float(len(centroids)),
    )
    log_json(
        {"centroids": centroids, "sizes": sizes, "seed": fitted.seed},
        "centroids.json",
    )
    if summary.series_lengths is not None:
        log_series_plots(df, assignments, model)
    return metrics


def _embed_into(df, spec: ModelSpec, weights: bytes, config: JobConfig, path: str):
    spark = df.sparkSession
    embed_parquet(
        spark, config.data.path, spec, weights, config.embed.batch_rows
    ).write.parquet(path)
    return spark.read.parquet(path)


def _assign_into(embeddings, centroids, path: str):
    assign_clusters(embeddings, centroids).write.parquet(path)
    return embeddings.sparkSession.read.parquet(path)


def _log_refinement(refined) -> None:
    """Log each target refresh as metrics stepped by batch, and the summary."""
    for record in refined.history:
        values = {
            "refine_smallest_cluster": record["smallest"],
            "refine_largest_cluster": record["largest"],
            "refine_starving_clusters": len(record["starving"]),
        }
        for key in ("changed", "kl", "reconstruction", "balance"):
            if record[key] is not None:
                values[f"refine_{key}"] = record[key]
        mlflow.log_metrics(values, step=record["batch"])
    mlflow.log_metrics(
        {
            "refine_batches": refined.batches,
            "refine_refreshes": len(refined.history),
            "refine_seconds_in_loop": refined.seconds,
        }
    )
    mlflow.set_tag("deepclust.refine_stopped", refined.stopped)
    log_json(refined.history, "refine_history.json")
    last = refined.history[-1]
    if last["starving"]:
        _logger.warning(
            "refine: cluster(s) %s end with fewer rows than refine.starving_fraction "
            "of an even split (sizes %s). If the clusters should be of similar "
            "size, set refine.balance_weight (e.g. 1.0); otherwise lower cluster.k.",
            last["starving"],
            last["sizes"],
        )


def check_family_fits_table(config: JobConfig, summary: TableSummary) -> None:
    """Check that the model family suits the table: rnn for series, no other.

    Raises
    ------
    InputError
        If ``model.family`` is rnn and the table contains feature vectors, or
        the other way round, or the rnn family is combined with a key it does
        not use (``model.scaling``, ``data.image_shape``).
    """
    family = config.model.family
    is_series = summary.series_lengths is not None
    if family == "rnn" and not is_series:
        raise InputError(
            f"Invalid config key model.family: 'rnn' expects a series table "
            f"(features as array<array<float>>, time steps x channels), but "
            f"{config.data.path!r} has feature vectors of length "
            f"{summary.feature_dim}. Use another model.family, or write the "
            "series with `deepclust prepare ucr`."
        )
    if is_series and family != "rnn":
        raise InputError(
            f"Invalid config key model.family: {family!r} expects feature "
            f"vectors, but {config.data.path!r} is a series table (features as "
            "array<array<float>>). Set model.family: rnn."
        )
    if family != "rnn" and config.train.series_shift_steps:
        raise InputError(
            "Invalid config key train.series_shift_steps: "
            f"{config.train.series_shift_steps} needs series, but model.family "
            f"is {family!r}. Set train.series_shift_steps: 0, or model.family: "
            "rnn with a series table."
        )
    if family != "rnn":
        return
    if config.model.scaling != "none":
        raise InputError(
            f"Invalid config key model.scaling: {config.model.scaling!r} is not "
            "available for the rnn family, which scales each series itself. Set "
            "model.scaling: none and use model.normalize."
        )
    train = config.train
    if (
        config.data.image_shape is not None
        or train.shift_pixels
        or train.rotation_degrees
    ):
        raise InputError(
            "Invalid config keys data.image_shape, train.shift_pixels and "
            "train.rotation_degrees for the rnn family: expected null, 0 and 0, "
            "because series are not images. Remove them from the config."
        )


def check_table_fits_config(config: JobConfig, summary: TableSummary) -> None:
    """Check the config's statements about the table against the table itself.

    Raises
    ------
    InputError
        If ``cluster.k`` or ``train.num_processes`` exceeds the rows, or
        ``data.image_shape`` does not multiply to the feature length.
    """
    if config.cluster.k > summary.rows:
        raise InputError(
            f"Invalid config key cluster.k: expected at most the number of rows "
            f"({summary.rows}) in {config.data.path!r}, got {config.cluster.k}. "
            "Lower cluster.k or use a larger table."
        )
    if config.train.num_processes > summary.rows:
        raise InputError(
            f"Invalid config key train.num_processes: expected at most the "
            f"number of rows ({summary.rows}) in {config.data.path!r}, got "
            f"{config.train.num_processes}. Every rank needs rows to train on. "
            "Lower train.num_processes or use a larger table."
        )
    shape = config.data.image_shape
    if shape is not None:
        size = shape[0] * shape[1] * shape[2]
        if size != summary.feature_dim:
            raise InputError(
                f"Invalid config key data.image_shape: {list(shape)} has {size} "
                f"values, but rows of {config.data.path!r} have "
                f"{summary.feature_dim}. Set it to [channels, height, width] with "
                "channels x height x width equal to the feature length."
            )
    for key in ("shift_pixels", "rotation_degrees"):
        value = getattr(config.train, key)
        if value and shape is None:
            raise InputError(
                f"Invalid config key train.{key}: {value} needs data.image_shape "
                "to know the image layout. Set data.image_shape: [channels, "
                f"height, width] or train.{key}: 0."
            )


def _model_spec(df, config: JobConfig, summary: TableSummary) -> ModelSpec:
    shift = scale = None
    if config.model.scaling != "none":
        shift, scale = _scaling(df, config.model.scaling)
    return ModelSpec(
        family=config.model.family,
        input_dim=summary.feature_dim,
        hidden_dims=tuple(config.model.layer_sizes),
        embedding_dim=config.model.embedding_dim,
        shift=shift,
        scale=scale,
        input_shape=config.data.image_shape,
        kernel_size=config.model.kernel_size,
        rnn_cell=config.model.rnn_cell,
        rnn_hidden_size=config.model.rnn_hidden_size,
        rnn_layers=config.model.rnn_layers,
        bidirectional=config.model.bidirectional,
        normalize=config.model.normalize,
        normalize_embedding=config.model.normalize_embedding,
        rnn_downsample=config.model.rnn_downsample,
        rnn_pooling=config.model.rnn_pooling,
        rnn_shift_tolerance=config.model.rnn_shift_tolerance,
        rnn_invariance_weight=config.model.rnn_invariance_weight,
    )


def _scaling(df, method: str) -> tuple[tuple, tuple]:
    """Compute per-feature shift and scale with one MLlib Summarizer pass."""
    vectors = df.select(array_to_vector("features").alias("v"))
    if method == "standard":
        row = vectors.select(
            Summarizer.mean(F.col("v")).alias("a"),
            Summarizer.std(F.col("v")).alias("b"),
        ).first()
        shift, scale = row["a"].toArray(), row["b"].toArray()
    else:
        row = vectors.select(
            Summarizer.min(F.col("v")).alias("a"), Summarizer.max(F.col("v")).alias("b")
        ).first()
        shift, scale = row["a"].toArray(), row["b"].toArray() - row["a"].toArray()
    # A constant feature keeps scale 1 instead of dividing by zero.
    scale = [float(s) if s > 1e-12 else 1.0 for s in scale]
    return tuple(float(v) for v in shift), tuple(scale)


def _log_training(spec: ModelSpec, result) -> None:
    for epoch, loss in enumerate(result.losses, start=1):
        mlflow.log_metric("train_loss", loss, step=epoch)
    mlflow.log_metrics(
        {"train_seconds_in_loop": result.seconds, "final_train_loss": result.losses[-1]}
    )
    mlflow.set_tag("deepclust.backend", result.backend)
    log_loss_curve(result.losses)
    mlflow.log_text(spec.to_json(), "model/spec.json")


def _write_centroids(spark, assignments, centroids, staging) -> list[int]:
    counts = dict(assignments.groupBy("cluster").count().collect())
    sizes = [int(counts.get(c, 0)) for c in range(len(centroids))]
    rows = [
        (c, [float(v) for v in centroids[c]], sizes[c]) for c in range(len(centroids))
    ]
    spark.createDataFrame(
        rows, "cluster int, centroid array<double>, size long"
    ).coalesce(1).write.parquet(f"{staging}/centroids")
    empty = [c for c, size in enumerate(sizes) if size == 0]
    if empty:
        _logger.warning("cluster: cluster(s) %s received no rows", empty)
    return sizes


def _check_rows(stage: str, rows_out: int, rows_in: int) -> int:
    if rows_out != rows_in:
        raise RuntimeError(
            f"Stage {stage} produced {rows_out} rows from {rows_in}; every row "
            "must come out once. This is a bug in deepclust; please report it."
        )
    return rows_out


def _read_raw_config(config_path: str) -> dict:
    try:
        return read_yaml(config_path)
    except InputError:
        # Record the failure in MLflow too, in the default experiment.
        with job_run(
            resolve_tracking_uri(None), "deepclust", None, {"deepclust.job": "train"}
        ):
            raise


def _string_or_none(value):
    return value if isinstance(value, str) and value.strip() else None
