"""MLflow pictures of a series clustering: series per cluster, reconstructions.

Only a small sample reaches the driver: the ``per_cluster`` series nearest to
each centroid.
"""

from __future__ import annotations

import io
import logging

import pyarrow as pa
import torch
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from deepclust.track.mlflow_run import log_bytes

_logger = logging.getLogger(__name__)


def sample_cluster_series(
    df: DataFrame, assignments: DataFrame, per_cluster: int = 5
) -> list[tuple[int, int, list]]:
    """Collect the ``per_cluster`` series nearest to each centroid.

    Parameters
    ----------
    df : DataFrame
        ``id``, ``features`` (array<array<float>>).
    assignments : DataFrame
        ``id``, ``cluster``, ``distance``.

    Returns
    -------
    list of (cluster, id, features)
        At most ``k * per_cluster`` rows, sorted by cluster, then distance.
    """
    nearest = Window.partitionBy("cluster").orderBy("distance", "id")
    rows = (
        assignments.withColumn("rank", F.row_number().over(nearest))
        .where(F.col("rank") <= per_cluster)
        .join(df.select("id", "features"), "id")
        .orderBy("cluster", "rank")
        .select("cluster", "id", "features")
        .collect()
    )
    return [(row["cluster"], row["id"], row["features"]) for row in rows]


def plot_cluster_series(model, samples: list[tuple[int, int, list]]) -> bytes:
    """Draw the sampled series of each cluster overlaid, as the encoder receives them.

    Each panel shows one cluster's series after the model's input scaling
    (z-normalised when ``model.normalize`` is on) and downsampling, so the
    x axis counts the encoder's steps; multivariate series show their first
    channel. Returns PNG bytes.
    """
    plt = _pyplot()
    clusters = sorted({cluster for cluster, _, _ in samples})
    figure, axes = _grid(plt, len(clusters), columns=4, width=3.2)
    for axis, cluster in zip(axes.flat, clusters, strict=False):
        series = [features for c, _, features in samples if c == cluster]
        scaled, lengths = _scaled_series(model, series)
        for values, length in zip(scaled, lengths, strict=True):
            axis.plot(values[:length, 0], linewidth=0.8, alpha=0.8)
        axis.set_title(f"cluster {cluster} ({len(series)} nearest)", fontsize=9)
        axis.tick_params(labelsize=7)
    channels = len(samples[0][2][0]) if samples else 1
    note = f", channel 1 of {channels}" if channels > 1 else ""
    figure.suptitle(f"Series nearest to each centroid{note}", fontsize=10)
    return _png(plt, figure)


def plot_reconstructions(
    model, samples: list[tuple[int, int, list]], count: int = 6
) -> bytes:
    """Draw ``count`` sampled series beside their reconstructions; PNG bytes.

    Both curves are the encoder's input units and steps; multivariate series
    show their first channel. With ``rnn_shift_tolerance`` the loss accepts a
    reconstruction moved in time, so the curves may be offset.
    """
    plt = _pyplot()
    # Take series from as many clusters as possible.
    by_cluster: dict[int, list] = {}
    for cluster, row_id, features in samples:
        by_cluster.setdefault(cluster, []).append((row_id, features))
    chosen = []
    while len(chosen) < count and any(by_cluster.values()):
        for cluster in sorted(by_cluster):
            if by_cluster[cluster] and len(chosen) < count:
                chosen.append((cluster, *by_cluster[cluster].pop(0)))
    scaled, lengths = _scaled_series(model, [features for _, _, features in chosen])
    batch = model.batch_from_arrow(_series_column([f for _, _, f in chosen]))
    with torch.inference_mode():
        _, reconstruction = model(batch)
    figure, axes = _grid(plt, len(chosen), columns=3, width=3.6)
    for index, (axis, (cluster, row_id, _)) in enumerate(
        zip(axes.flat, chosen, strict=False)
    ):
        length = lengths[index]
        axis.plot(scaled[index, :length, 0], linewidth=0.9, label="input")
        axis.plot(
            reconstruction[index, :length, 0].numpy(),
            linewidth=0.9,
            label="reconstruction",
        )
        axis.set_title(f"id {row_id}, cluster {cluster}", fontsize=9)
        axis.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    figure.suptitle("Inputs and reconstructions", fontsize=10)
    return _png(plt, figure)


def log_series_plots(df: DataFrame, assignments: DataFrame, model) -> None:
    """Log ``cluster_series.png`` and ``reconstructions.png`` to the active run."""
    samples = sample_cluster_series(df, assignments)
    if not samples:
        return
    log_bytes(plot_cluster_series(model, samples), "cluster_series.png")
    log_bytes(plot_reconstructions(model, samples), "reconstructions.png")
    _logger.info("track: logged series plots of %d sampled series", len(samples))


def _scaled_series(model, series: list):
    batch = model.batch_from_arrow(_series_column(series))
    with torch.inference_mode():
        inputs = model.encoder_input(batch)
    return inputs.values.numpy(), inputs.lengths.tolist()


def _series_column(series: list) -> pa.Array:
    return pa.array(series, pa.list_(pa.list_(pa.float32())))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _grid(plt, panels: int, columns: int, width: float):
    """Build a figure of ``panels`` axes, ``columns`` wide, spare axes hidden."""
    columns = min(columns, panels)
    rows = -(-panels // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(width * columns, 2.4 * rows), squeeze=False
    )
    for axis in axes.flat[panels:]:
        axis.axis("off")
    return figure, axes


def _png(plt, figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
