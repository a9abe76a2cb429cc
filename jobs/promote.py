"""Entry point of the promotion step for workflow schedulers.

    python jobs/promote.py --config conf/mnist_mlp.yaml [--version 3] [--force]

It only talks to the MLflow registry, so it needs no Spark and no spark-submit.
"""

import argparse
import sys

from deepclust.cli import main


def parse_args(argv):
    parser = argparse.ArgumentParser(description="deepclust model promotion")
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--version", default=None, help="version to promote")
    parser.add_argument("--force", action="store_true", help="skip the comparison")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    argv = ["promote", args.config]
    if args.version is not None:
        argv += ["--version", args.version]
    if args.force:
        argv.append("--force")
    sys.exit(main(argv))
