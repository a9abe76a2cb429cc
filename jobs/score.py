"""spark-submit entry point of the scoring job.

    spark-submit jobs/score.py --config conf/mnist_mlp.yaml \\
        --input data/tables/mnist-test --output output/scores --date 2026-01-31 \\
        [--model-uri models:/deepclust-mnist@champion] [--set score.drift_threshold=0.1]

The master comes from spark-submit. The model loads on the driver from the
MLflow registry; deepclust must be installed on the driver and the executors.
"""

import argparse
import sys

from deepclust.cli import add_override_option, main


def parse_args(argv):
    parser = argparse.ArgumentParser(description="deepclust scoring job")
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--input", required=True, help="parquet table to score")
    parser.add_argument("--output", required=True, help="root of the output table")
    parser.add_argument("--date", default=None, help="run date YYYY-MM-DD")
    parser.add_argument("--model-uri", default=None, help="MLflow model URI")
    add_override_option(parser)
    return parser.parse_args(argv)


def to_cli_args(args) -> list[str]:
    """Translate the parsed options into ``deepclust score`` arguments."""
    argv = ["score", args.config, "--input", args.input, "--output", args.output]
    if args.date:
        argv += ["--date", args.date]
    if args.model_uri:
        argv += ["--model-uri", args.model_uri]
    return argv + [item for value in args.overrides for item in ("--set", value)]


if __name__ == "__main__":
    sys.exit(main(to_cli_args(parse_args(sys.argv[1:]))))
