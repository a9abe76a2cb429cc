"""Command line: ``deepclust prepare`` and ``deepclust train``.

This module and ``jobs/`` are the entry points: they configure logging, build
the SparkSession and call one library function each.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from deepclust.errors import DeepClustError

_logger = logging.getLogger("deepclust")

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
    """
    from pyspark.sql import SparkSession

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
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
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
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value; repeatable, e.g. --set train.epochs=5",
    )
    train.add_argument(
        "--master", default=None, help="Spark master (default: local[*])"
    )
    return parser


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
    spark = build_session(f"deepclust-{args.command}", args.master)
    try:
        if args.command == "prepare":
            return run_prepare(args, spark)
        return run_train(args, spark)
    except DeepClustError as exc:
        _logger.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
