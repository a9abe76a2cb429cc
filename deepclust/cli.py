"""Command line: ``deepclust prepare``, ``train``, ``promote`` and ``score``.

This module and ``jobs/`` are the entry points: they configure logging, build
the SparkSession and call one library function each.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from deepclust.errors import DeepClustError, JobTerminated, ServiceUnavailableError

LOCAL_MASTER = "local[*]"


def configure_logging(level: int = logging.INFO) -> None:
    """Send deepclust's log lines to stderr and quiet the chattier libraries."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("py4j", "mlflow", "alembic", "urllib3", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_session(app_name: str, master: str | None = None):
    """Build the SparkSession of a job.

    ``master`` None keeps what spark-submit set, or local mode when run
    directly. Local sessions bind the driver and its UI to 127.0.0.1.

    Raises
    ------
    ServiceUnavailableError
        If a standalone master does not respond or starts no executor in time.
        The session is stopped first.
    """
    from pyspark.sql import SparkSession

    from deepclust.preflight import (
        check_spark_master,
        submitted_master,
        wait_for_executors,
    )
    from deepclust.train.distributed import BARRIER_FAIL_FAST_CONF

    builder = SparkSession.builder.appName(app_name)
    # spark-submit starts the JVM first and hands its address to Python.
    running_under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if master is not None or not running_under_submit:
        master = master or LOCAL_MASTER
        builder = builder.master(master)
    if master and master.startswith("local"):
        # Python workers run the interpreter that runs this job, which has
        # deepclust and its dependencies, unless the user chose another.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    for key, value in BARRIER_FAIL_FAST_CONF.items():
        builder = builder.config(key, value)
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    # getOrCreate retries an unreachable standalone master for about a
    # minute and then fails with an unrelated message, so check it first.
    check_spark_master(master or submitted_master())
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        wait_for_executors(spark)
    except ServiceUnavailableError:
        spark.stop()
        raise
    return spark


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``deepclust`` command."""
    from deepclust.read.prepare import DEFAULT_MNIST_DIR, SOURCES
    from deepclust.read.ucr import SPLITS

    parser = argparse.ArgumentParser(
        prog="deepclust",
        description="Deep clustering on Apache Spark, tracked in MLflow.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser(
        "prepare", help="convert a data set into a parquet feature table"
    )
    prepare.add_argument("source", choices=SOURCES, help="data set to convert")
    prepare.add_argument("--output", required=True, help="parquet folder to write")
    prepare.add_argument(
        "--source-dir",
        default=None,
        help=f"folder of the MNIST IDX files (default: {DEFAULT_MNIST_DIR}), or "
        "for ucr the archive folder with <Name>_TRAIN.ts and <Name>_TEST.ts "
        "(or .tsv), e.g. data/ucr/Trace",
    )
    prepare.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="for ucr: the archive split to write; all is TRAIN, then TEST",
    )
    prepare.add_argument(
        "--overwrite", action="store_true", help="replace an existing output folder"
    )
    prepare.add_argument(
        "--master", default=None, help="Spark master (default: local[*])"
    )

    train = commands.add_parser(
        "train", help="train, embed, cluster and evaluate, tracked in MLflow"
    )
    train.add_argument("config", help="YAML config file, e.g. conf/mnist_mlp.yaml")
    add_override_option(train)
    train.add_argument(
        "--master", default=None, help="Spark master (default: local[*])"
    )
    _add_promote_parser(commands)
    _add_score_parser(commands)
    return parser


def _add_promote_parser(commands) -> None:
    promote = commands.add_parser(
        "promote",
        help="move the alias champion to a registered version if its metric wins",
    )
    promote.add_argument(
        "config", help="YAML config with registry.model_name and promote_metric"
    )
    promote.add_argument(
        "--version",
        type=int,
        default=None,
        help="version to promote (default: the one with alias candidate)",
    )
    promote.add_argument(
        "--force", action="store_true", help="promote without comparing metrics"
    )
    add_override_option(promote)


def _add_score_parser(commands) -> None:
    score = commands.add_parser(
        "score", help="assign a table's rows to clusters with a registered model"
    )
    score.add_argument("config", help="YAML config with registry, score, tracking")
    score.add_argument("--input", required=True, help="parquet table to score")
    score.add_argument(
        "--output", required=True, help="root folder of the date-partitioned output"
    )
    score.add_argument(
        "--date",
        default=None,
        help="run date YYYY-MM-DD, the partition to write (default: today, UTC)",
    )
    score.add_argument(
        "--model-uri",
        default=None,
        help="MLflow model URI (default: models:/<registry.model_name>@champion)",
    )
    score.add_argument(
        "--master", default=None, help="Spark master (default: local[*])"
    )
    add_override_option(score)


def add_override_option(parser) -> None:
    """Add the repeatable ``--set SECTION.KEY=VALUE`` option to ``parser``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value; repeatable, e.g. --set cluster.k=8",
    )


def run_prepare(args, spark) -> int:
    """Run ``deepclust prepare``."""
    from deepclust.read.prepare import prepare_table

    rows = prepare_table(
        spark,
        args.source,
        args.output,
        args.source_dir,
        overwrite=args.overwrite,
        split=args.split,
    )
    print(f"Wrote {rows} rows of {args.source} to {args.output}")
    return 0


def run_train(args, spark) -> int:
    """Run ``deepclust train`` and print the metrics summary."""
    from pipelines.train import run_training_job

    result = run_training_job(spark, args.config, args.overrides)
    print(format_summary(result))
    return 0


def _check_train_config(args) -> int:
    from pipelines.train import check_training_config

    check_training_config(args.config, args.overrides)
    return 0


def run_promote(args) -> int:
    """Run ``deepclust promote``; print whether the version became champion."""
    from mlflow.tracking import MlflowClient

    from deepclust.config import load_config
    from deepclust.registry import promote
    from deepclust.track import resolve_tracking_uri

    config = load_config(args.config, args.overrides)
    tracking_uri = resolve_tracking_uri(config.tracking.uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    result = promote(client, config.registry, args.version, args.force)
    state = "promoted" if result.promoted else "not promoted"
    print(
        f"{config.registry.model_name} version {result.version} {state} "
        f"(champion was {result.previous}): {result.reason}"
    )
    return 0


def run_score(args, spark) -> int:
    """Run ``deepclust score`` and print the partition and the health metrics."""
    import datetime

    from pipelines.score import run_scoring_job

    run_date = args.date or datetime.datetime.now(datetime.timezone.utc).date()
    result = run_scoring_job(
        spark,
        args.config,
        args.input,
        args.output,
        str(run_date),
        args.model_uri,
        args.overrides,
    )
    print(f"deepclust scoring run {result.run_id}")
    print(f"model: {result.model_uri} (version {result.model_version})")
    print(f"output: {result.partition_path}")
    print(f"  {'rows_out':<14}{int(result.metrics['rows_out'])}")
    for name in ("mean_distance", "drift_psi"):
        print(f"  {name:<14}{result.metrics[name]:.4f}")
    return 0


def format_summary(result) -> str:
    """Format a job result as a short table for the terminal."""
    lines = [f"deepclust run {result.run_id}", f"output: {result.output_path}"]
    for name in ("acc", "nmi", "ari", "silhouette", "inertia"):
        if name in result.metrics:
            lines.append(f"  {name:<12}{result.metrics[name]:.4f}")
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    lines.append(f"  seconds     {stages}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepclust`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _main(args)
    except JobTerminated as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame):
    raise JobTerminated(
        "Stopped by SIGTERM. The job's MLflow run, if it had started, is "
        "marked FAILED, and earlier output is kept. Run the job again to "
        "produce new output."
    )


def _main(args) -> int:
    if args.command == "promote":
        # Promotion only talks to the registry; it needs no Spark.
        return _report_errors(run_promote, args)
    if args.command == "train":
        # A bad config fails here, in a second, instead of after Spark starts.
        status = _report_errors(_check_train_config, args)
        if status:
            return status
    commands = {"prepare": run_prepare, "train": run_train, "score": run_score}
    return _report_errors(_run_with_session, commands[args.command], args)


def _run_with_session(command, args) -> int:
    """Build the job's SparkSession, run ``command(args, spark)``, stop Spark."""
    spark = build_session(f"deepclust-{args.command}", args.master)
    try:
        return command(args, spark)
    finally:
        spark.stop()


def _report_errors(command, *args) -> int:
    """Run a command; turn deepclust's own errors into exit status 2."""
    try:
        return command(*args)
    except DeepClustError as exc:
        # The message goes to stderr once, without a log prefix, because it
        # is the user's next step.
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
