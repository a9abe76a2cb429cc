"""Drift of the cluster shares between training and scoring."""

from __future__ import annotations

import numpy as np

# A cluster with no rows on one side would make the index infinite; shares
# below this floor count as the floor.
SHARE_FLOOR = 1e-4


def cluster_shares(counts) -> np.ndarray:
    """Return each cluster's share of the rows.

    Parameters
    ----------
    counts : sequence of int, length k
        Rows per cluster; at least one must be positive.

    Returns
    -------
    ndarray of shape (k,), float64, summing to 1
    """
    counts = np.asarray(counts, dtype=np.float64)
    return counts / counts.sum()


def population_stability_index(expected, actual, floor: float = SHARE_FLOOR) -> float:
    """Compute the population stability index of two share vectors.

    ``PSI = sum_i (actual_i - expected_i) * ln(actual_i / expected_i)``, with
    every share raised to at least ``floor``. It is 0 for equal shares and
    grows with the shift; it is symmetric in its two arguments.

    Parameters
    ----------
    expected, actual : array-like of shape (k,)
        Shares per cluster, e.g. from training and from a scoring run.
    floor : float
        Smallest share used in the logarithm.

    Returns
    -------
    float
    """
    expected = np.maximum(np.asarray(expected, dtype=np.float64), floor)
    actual = np.maximum(np.asarray(actual, dtype=np.float64), floor)
    if expected.shape != actual.shape:
        raise ValueError(
            f"Share vectors differ in length: expected has {expected.shape}, "
            f"actual has {actual.shape}; both need one share per cluster."
        )
    return float(np.sum((actual - expected) * np.log(actual / expected)))
