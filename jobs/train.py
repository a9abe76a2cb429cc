"""spark-submit entry point of the training job.

    spark-submit jobs/train.py --config conf/mnist_mlp.yaml [--set train.epochs=5]

The master comes from spark-submit. deepclust must be installed in the Python
environment of the driver and of the executors, because TorchDistributor's
torchrun processes do not see files shipped with --py-files.
"""

import argparse
import sys

from deepclust.cli import add_override_option, main


def parse_args(argv):
    parser = argparse.ArgumentParser(description="deepclust training job")
    parser.add_argument("--config", required=True, help="YAML config file")
    add_override_option(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    overrides = [item for value in args.overrides for item in ("--set", value)]
    sys.exit(main(["train", args.config, *overrides]))
