"""Image artifacts of runs on image tables: cluster samples and reconstructions.

Only a sample travels to the driver: a few rows per cluster, picked in Spark
by a seeded hash of the row id.
"""

from __future__ import annotations

import logging
import time

import mlflow
import numpy as np
import torch
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

_logger = logging.getLogger(__name__)


def sample_per_cluster(
    features: DataFrame, assignments: DataFrame, per_cluster: int, seed: int
) -> dict[int, np.ndarray]:
    """Collect up to ``per_cluster`` rows of each cluster to the driver.

    Parameters
    ----------
    features : DataFrame
        ``id``, ``features`` (array<float>).
    assignments : DataFrame
        ``id``, ``cluster`` (int).
    per_cluster : int
        Rows to keep per cluster; the same ``seed`` picks the same rows.

    Returns
    -------
    dict
        Cluster id to a float32 array of shape ``(rows, n_features)``, with
        ``rows <= per_cluster``. Clusters without rows are absent.
    """
    # Rank within each cluster on (id, cluster) only, then fetch the features
    # of the few picked ids, so the feature column is never shuffled.
    order = Window.partitionBy("cluster").orderBy(F.xxhash64("id", F.lit(seed)), "id")
    picked = (
        assignments.select("id", "cluster")
        .withColumn("position", F.row_number().over(order))
        .where(F.col("position") <= per_cluster)
    )
    rows = (
        features.select("id", "features")
        .join(F.broadcast(picked), "id")
        .orderBy("cluster", "position")
        .collect()
    )
    samples: dict[int, list] = {}
    for row in rows:
        samples.setdefault(row["cluster"], []).append(row["features"])
    return {c: np.asarray(v, dtype=np.float32) for c, v in samples.items()}


def reconstruct(model, inputs: np.ndarray) -> np.ndarray:
    """Run the autoencoder and undo its input scaling.

    Takes and returns float32 arrays of shape ``(rows, n_features)`` in the
    units of the feature table.
    """
    with torch.inference_mode():
        _, output = model(torch.from_numpy(inputs))
        output = output * model.scale + model.shift
    return output.numpy()


def to_display(flat: np.ndarray, image_shape, low: float, high: float) -> np.ndarray:
    """Turn one flat channels-first image into an array for ``imshow``.

    Values are mapped from ``[low, high]`` to ``[0, 1]``. Returns ``(height,
    width, 3)`` for 3 channels and ``(height, width)`` otherwise, averaging
    the channels of images that have neither 1 nor 3.
    """
    channels, height, width = image_shape
    image = flat.reshape(channels, height, width)
    image = np.clip((image - low) / max(high - low, 1e-12), 0.0, 1.0)
    if channels == 3:
        return image.transpose(1, 2, 0)
    return image.mean(axis=0)


def plot_cluster_grid(samples: dict[int, np.ndarray], image_shape, sizes: list[int]):
    """Plot one row of sample images per cluster and return the figure."""
    from matplotlib import pyplot as plt

    columns = max(len(v) for v in samples.values())
    low, high = _value_range(samples.values())
    figure, axes = plt.subplots(
        len(sizes),
        columns,
        figsize=(columns * 0.8 + 1.2, len(sizes) * 0.8),
        squeeze=False,
    )
    for cluster, row in enumerate(axes):
        images = samples.get(cluster, np.empty((0,)))
        for column, axis in enumerate(row):
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_frame_on(False)
            if column < len(images):
                image = to_display(images[column], image_shape, low, high)
                axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        row[0].set_ylabel(f"{cluster}\n({sizes[cluster]})", rotation=0, labelpad=18)
    figure.suptitle("Sample images per cluster (cluster id, rows)")
    return figure


def plot_reconstructions(inputs: np.ndarray, outputs: np.ndarray, image_shape):
    """Plot inputs (top row) above their reconstructions and return the figure."""
    from matplotlib import pyplot as plt

    low, high = _value_range([inputs])
    count = len(inputs)
    figure, axes = plt.subplots(
        2, count, figsize=(count * 0.8 + 1.2, 2.0), squeeze=False
    )
    for label, row, images in (
        ("input", axes[0], inputs),
        ("output", axes[1], outputs),
    ):
        for axis, image in zip(row, images, strict=True):
            axis.imshow(
                to_display(image, image_shape, low, high),
                cmap="gray",
                vmin=0.0,
                vmax=1.0,
            )
            axis.set_xticks([])
            axis.set_yticks([])
        row[0].set_ylabel(label)
    figure.suptitle("Autoencoder inputs and reconstructions")
    return figure


def log_image_artifacts(
    features: DataFrame,
    assignments: DataFrame,
    model,
    image_shape,
    sizes: list[int],
    seed: int,
    per_cluster: int = 8,
) -> None:
    """Log ``cluster_samples.png`` and ``reconstructions.png`` to the active run.

    Collects at most ``per_cluster`` rows per cluster to the driver. The
    reconstructions show the first sampled image of each cluster.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    started = time.perf_counter()
    samples = sample_per_cluster(features, assignments, per_cluster, seed)
    if not samples:
        _logger.warning("images: no rows sampled, so no image artifacts logged")
        return
    for artifact, figure in (
        ("cluster_samples.png", plot_cluster_grid(samples, image_shape, sizes)),
        ("reconstructions.png", _reconstruction_figure(model, samples, image_shape)),
    ):
        mlflow.log_figure(figure, artifact)
        plt.close(figure)
    _logger.info(
        "images: logged samples of %d clusters (%.1f s)",
        len(samples),
        time.perf_counter() - started,
    )


def _reconstruction_figure(model, samples, image_shape):
    inputs = np.stack([samples[c][0] for c in sorted(samples)])
    return plot_reconstructions(inputs, reconstruct(model, inputs), image_shape)


def _value_range(arrays) -> tuple[float, float]:
    values = [a for a in arrays if a.size]
    return (
        float(min(a.min() for a in values)),
        float(max(a.max() for a in values)),
    )
