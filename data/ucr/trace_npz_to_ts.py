"""Write the Trace data set that tslearn ships as UCR/UEA ``.ts`` files.

tslearn 0.10 stores Trace as ``tslearn/.cached_datasets/Trace.npz`` with the
arrays ``X_train``, ``y_train``, ``X_test`` and ``y_test`` (100 series of 275
steps each, classes 1-4). This script rewrites them as ``Trace_TRAIN.ts`` and
``Trace_TEST.ts`` beside itself, values printed with 9 significant digits so
that float32 values read back unchanged. Run it from the repository root:

    python data/ucr/trace_npz_to_ts.py [--npz PATH]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

HEADER = """#Trace from the UEA & UCR Time Series Classification Repository
#(A. Bagnall, J. Lines, W. Vickers and E. Keogh), four classes.
#Converted from tslearn 0.10's cached copy by data/ucr/trace_npz_to_ts.py.
@problemName Trace
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength {length}
@classLabel true 1 2 3 4
@data
"""


def default_npz() -> str:
    """Return the path of Trace.npz inside the installed tslearn package."""
    import tslearn

    folder = os.path.dirname(tslearn.__file__)
    return os.path.join(folder, ".cached_datasets", "Trace.npz")


def write_ts(path: str, series: np.ndarray, labels: np.ndarray) -> None:
    """Write ``(n, length, 1)`` series and their labels as a univariate .ts file."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(HEADER.format(length=series.shape[1]))
        for values, label in zip(series[:, :, 0], labels, strict=True):
            text = ",".join(f"{v:.9g}" for v in values.astype(np.float32))
            handle.write(f"{text}:{int(label)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", default=None, help="Trace.npz (default: tslearn's)")
    args = parser.parse_args()
    data = np.load(args.npz or default_npz(), allow_pickle=False)
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Trace")
    os.makedirs(folder, exist_ok=True)
    for split in ("train", "test"):
        path = os.path.join(folder, f"Trace_{split.upper()}.ts")
        write_ts(path, data[f"X_{split}"], data[f"y_{split}"])


if __name__ == "__main__":
    main()
