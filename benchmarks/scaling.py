"""Benchmark: the training job on 1x, 10x and 100x rows.

Generates a feature table of ``base`` rows (64 features around 10 Gaussian
centres, with labels) and its 10x and 100x versions. Then it runs the whole
training job once per size. Each size runs in a fresh process with its own
Spark session, so that one size's memory does not carry into the next. Prints wall
seconds per stage, seconds per 1,000 rows, and the peak resident memory of the
driver: the Python process and its JVM, which in local mode also runs the
executor. Memory is sampled every 0.2 s from ``/proc``; the Python workers
that the JVM starts for the tasks are not counted.

The model is small (64-128-64-10, 1 epoch) so that 100x stays within minutes
on 2 cores; the job's stages are the same as with the MNIST configs.

    .venv/bin/python benchmarks/scaling.py --base 10000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from run_context import load_average, print_context

from deepclust.cli import build_session, configure_logging
from deepclust.embed.spark import fixed_rows_to_list
from pipelines.train import run_training_job

STAGES = ("read", "train", "embed", "cluster", "evaluate")
CONFIG = {
    "model": {"family": "mlp", "hidden_dims": [128, 64], "embedding_dim": 10},
    "train": {"epochs": 1, "batch_size": 256, "num_processes": 2},
    "cluster": {"k": 10, "n_init": 1},
    "output": {"overwrite": True},
    "registry": {"enabled": False},
    "seed": 0,
}


def write_table(path: str, rows: int, files: int, seed: int = 0) -> None:
    """Write ``rows`` labelled rows of 64 features around 10 centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(10, 64)).astype(np.float32)
    os.makedirs(path)
    first = 0
    for index, count in enumerate(np.diff(np.linspace(0, rows, files + 1, dtype=int))):
        labels = rng.integers(0, 10, count)
        points = centres[labels] + rng.normal(size=(count, 64)).astype(np.float32)
        table = pa.table(
            {
                "id": pa.array(np.arange(first, first + count, dtype=np.int64)),
                "features": fixed_rows_to_list(points),
                "label": pa.array(labels.astype(np.int64)),
            }
        )
        pq.write_table(table, os.path.join(path, f"part-{index:04d}.parquet"))
        first += count


class PeakMemory:
    """Sample the resident memory of some processes in a background thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2):
        self.pids = pids
        self.peaks = dict.fromkeys(pids, 0)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], resident_bytes(pid))
            self._stop.wait(self.interval)


def resident_bytes(pid: int) -> int:
    """Return the resident set size of a process from ``/proc``, 0 if gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_one(rows: int, folder: str) -> dict:
    """Run the job on a new table of ``rows`` rows; return its figures."""
    configure_logging()
    spark = build_session("deepclust-scaling-benchmark")
    table = os.path.join(folder, "table")
    write_table(table, rows, files=max(4, rows // 100_000))
    config = dict(CONFIG, data={"path": table})
    config["output"] = dict(CONFIG["output"], path=os.path.join(folder, "out"))
    config["tracking"] = {"uri": f"sqlite:///{folder}/mlflow.db"}
    config_path = os.path.join(folder, "config.yaml")
    with open(config_path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle)
    jvm_pid = spark.sparkContext._jvm.ProcessHandle.current().pid()
    with PeakMemory({"python": os.getpid(), "jvm": jvm_pid}) as memory:
        started = time.perf_counter()
        result = run_training_job(spark, config_path)
        wall = time.perf_counter() - started
    spark.stop()
    return {
        "rows": rows,
        "seconds": result.seconds,
        "total": wall,
        "peak_mib": {name: peak / 2**20 for name, peak in memory.peaks.items()},
        "nmi": result.metrics.get("nmi"),
        "load": load_average(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=10_000, help="rows at 1x")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(run_one(args.one, folder)))
        return 0

    print_context()
    results = []
    for factor in args.factors:
        rows = args.base * factor
        output = subprocess.run(
            [sys.executable, __file__, "--one", str(rows)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(f"{rows} rows done, load average {load_average()}", flush=True)

    header = ["rows", *STAGES, "total", "s per 1k rows", "Python MiB", "JVM MiB"]
    print("| " + " | ".join(header) + " | NMI | load average |")
    print("| " + " | ".join("---" for _ in range(len(header) + 2)) + " |")
    for result in results:
        stages = [f"{result['seconds'][name]:.1f}" for name in STAGES]
        per_thousand = 1000 * result["total"] / result["rows"]
        cells = [
            f"{result['rows']:,}",
            *stages,
            f"{result['total']:.1f}",
            f"{per_thousand:.2f}",
            f"{result['peak_mib']['python']:.0f}",
            f"{result['peak_mib']['jvm']:.0f}",
            f"{result['nmi']:.3f}",
            result["load"],
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
