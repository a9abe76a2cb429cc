"""Benchmark: TorchDistributor's start-up cost per training run.

Times, in one process, runs whose training function only joins the gloo
process group and returns, so everything measured is overhead:

- ``python -c "import torch"``: one interpreter start and torch import, the
  least any process that trains pays;
- ``torchrun``: the same function under ``torch.distributed.run`` without
  Spark, as TorchDistributor starts it in local mode;
- ``TorchDistributor`` with ``local_mode=True`` and with ``local_mode=False``
  (barrier tasks on ``local[*]``), for 1 and 2 processes.

Each row is the median of ``--repeats`` runs.

    .venv/bin/python benchmarks/torch_startup.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from run_context import load_average, print_context

from deepclust.cli import build_session, configure_logging

RANK_SCRIPT = """
import torch.distributed as dist
dist.init_process_group("gloo")
dist.barrier()
dist.destroy_process_group()
"""


def join_group() -> dict:
    """Join the gloo process group, wait for every rank and leave it.

    Returns the world size and the torch threads of the rank, to show how
    many threads each rank trains with.
    """
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    dist.barrier()
    found = {"world_size": dist.get_world_size(), "threads": torch.get_num_threads()}
    dist.destroy_process_group()
    return found


def median_seconds(run, repeats: int) -> float:
    """Return the median wall seconds of ``repeats`` calls of ``run``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_command(command: list[str]) -> None:
    """Run a command and raise with its output if it fails."""
    subprocess.run(command, check=True, capture_output=True, text=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    configure_logging()
    print_context()
    spark = build_session("deepclust-startup-benchmark")
    from pyspark.ml.torch.distributor import TorchDistributor

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        script = os.path.join(folder, "rank.py")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(RANK_SCRIPT)
        python = sys.executable
        cases = [
            ("python -c 'import torch'", [python, "-c", "import torch"]),
            *(
                (
                    f"torchrun, {n} process(es)",
                    [python, "-m", "torch.distributed.run", "--standalone"]
                    + [f"--nproc_per_node={n}", script],
                )
                for n in (1, 2)
            ),
        ]
        for label, command in cases:
            seconds = median_seconds(lambda c=command: run_command(c), args.repeats)
            rows.append((label, seconds, load_average()))
    for local_mode in (True, False):
        for processes in (1, 2):
            distributor = TorchDistributor(
                num_processes=processes, local_mode=local_mode, use_gpu=False
            )
            seconds = median_seconds(
                lambda d=distributor: d.run(join_group), args.repeats
            )
            threads = distributor.run(join_group)["threads"]
            mode = "local_mode=True" if local_mode else "local_mode=False (barrier)"
            label = (
                f"TorchDistributor {mode}, {processes} process(es), "
                f"{threads} torch thread(s) per rank"
            )
            rows.append((label, seconds, load_average()))
    spark.stop()

    print("| run | median s | load average |")
    print("| --- | --- | --- |")
    for label, seconds, load in rows:
        print(f"| {label} | {seconds:.2f} | {load} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
