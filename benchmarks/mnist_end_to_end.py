"""Benchmark: the training job on the MNIST test split.

Runs ``deepclust prepare mnist`` and the training job with a config (default
``conf/mnist_mlp.yaml``), then prints one Markdown table row with ACC, NMI,
ARI and the seconds per stage, and the machine it ran on. With ``--record``
the row is appended to docs/benchmarks.md.

    .venv/bin/python benchmarks/mnist_end_to_end.py [--config CONF] [--record]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import tempfile
import time

from run_context import describe_machine

from deepclust.cli import build_session, configure_logging
from deepclust.read.prepare import prepare_table
from pipelines.train import run_training_job

STAGES = ("read", "train", "embed", "cluster", "evaluate")
RECORD_FILE = os.path.join(os.path.dirname(__file__), "..", "docs", "benchmarks.md")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/mnist_mlp.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--source",
        default="mnist",
        choices=["mnist", "digits"],
        help="table to prepare: the MNIST test split or scikit-learn's digits",
    )
    parser.add_argument(
        "--record", action="store_true", help="append to docs/benchmarks.md"
    )
    args = parser.parse_args(argv)

    configure_logging()
    spark = build_session("deepclust-benchmark", os.environ.get("SPARK_MASTER"))
    with tempfile.TemporaryDirectory() as folder:
        table = os.path.join(folder, args.source)
        prepare_table(spark, args.source, table)
        overrides = [
            f"data.path={table}",
            f"output.path={os.path.join(folder, 'out')}",
            *args.overrides,
        ]
        started = time.perf_counter()
        result = run_training_job(spark, args.config, overrides)
        wall = time.perf_counter() - started
    spark.stop()

    seconds = result.seconds
    command = "python benchmarks/mnist_end_to_end.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    metrics = [f"{result.metrics[name]:.3f}" for name in ("acc", "nmi", "ari")]
    stages = [f"{seconds[name]:.0f}" for name in STAGES]
    cells = [time.strftime("%Y-%m-%d"), f"`{command.strip()}`", *metrics, *stages]
    cells += [f"{wall:.0f}", f"{peak_mib:.0f}"]
    row = "| " + " | ".join(cells) + " |"
    print(row)
    if "refine" in seconds:
        before = [
            f"{result.metrics[f'kmeans_{name}']:.3f}" for name in ("acc", "nmi", "ari")
        ]
        print(
            "before refinement: acc {} nmi {} ari {}; refine {:.0f} s".format(
                *before, seconds["refine"]
            )
        )
    print(f"machine: {describe_machine()}")
    if args.record:
        with open(RECORD_FILE, "a", encoding="utf-8") as handle:
            handle.write(row + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
