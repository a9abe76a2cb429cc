"""The clustering model as an MLflow pyfunc: features in, cluster out.

A model version contains three files as pyfunc artifacts, the same files that the
training run logs:

=================  ==========================================================
artifact           contents
=================  ==========================================================
``weights``        ``autoencoder.pt``: the autoencoder's ``state_dict`` saved
                   with ``torch.save``. Its buffers ``shift`` and ``scale``
                   are the input scaling, so the preprocessing travels with it.
``spec``           ``spec.json``: the :class:`~deepclust.models.ModelSpec`
                   (family, layer sizes, input length, scaling).
``centroids``      ``centroids.json``: ``{"centroids": k x embedding_dim,
                   "sizes": rows per cluster in training, "seed": int}``.
=================  ==========================================================
"""

from __future__ import annotations

import json
import logging

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from mlflow.models.signature import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from deepclust.cluster import nearest_centroids
from deepclust.errors import InputError
from deepclust.models.base import ModelSpec, load_autoencoder

_logger = logging.getLogger(__name__)

WEIGHTS = "weights"
SPEC = "spec"
CENTROIDS = "centroids"


class ClusterModel(mlflow.pyfunc.PythonModel):
    """Assign rows of raw features to the nearest centroid of their embedding.

    Nothing of it is pickled. :func:`register_trained_model` logs it as
    "model from code": MLflow copies ``deepclust/registry/model_code.py``
    (which imports this class from the installed deepclust and calls
    ``mlflow.models.set_model``) into the model folder, writes no
    ``python_model.pkl``, and runs that file at load time. The state comes
    from the model's own artifacts in :meth:`load_context`. The weights load
    with ``torch.load(weights_only=True)``, which accepts tensors and plain
    containers only, so it runs no pickled code.

    Input: a pandas DataFrame with ``features`` (one list or array of
    ``input_dim`` floats per row) and optionally ``id``.
    Output: a DataFrame with ``id`` (when given), ``cluster`` (int32, 0-based)
    and ``distance`` (float64, Euclidean distance to the cluster's centroid
    in the embedding space), one row per input row, in input order.
    """

    def load_context(self, context) -> None:
        """Load the spec, the weights and the centroids from the artifacts."""
        with open(context.artifacts[SPEC], encoding="utf-8") as handle:
            self.spec = ModelSpec.from_json(handle.read())
        with open(context.artifacts[WEIGHTS], "rb") as handle:
            self.weights = handle.read()
        with open(context.artifacts[CENTROIDS], encoding="utf-8") as handle:
            clustering = json.load(handle)
        self.centroids = np.asarray(clustering["centroids"], dtype=np.float64)
        self.sizes = [int(size) for size in clustering["sizes"]]
        self.autoencoder = load_autoencoder(self.spec, self.weights)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Assign each row of ``model_input`` to a cluster.

        Raises
        ------
        InputError
            If ``features`` is missing or a row's length is not ``input_dim``.
        """
        if self.spec.family == "rnn":
            batch = self.autoencoder.batch_from_arrow(series_to_arrow(model_input))
        else:
            features = features_to_numpy(model_input, self.spec.input_dim)
            batch = torch.from_numpy(features)
        with torch.inference_mode():
            embedding = self.autoencoder.embed(batch).numpy()
        cluster, distance = nearest_centroids(embedding, self.centroids)
        output = pd.DataFrame({"cluster": cluster, "distance": distance})
        if "id" in model_input.columns:
            output.insert(0, "id", model_input["id"].to_numpy())
        return output

    @property
    def training_shares(self) -> np.ndarray:
        """Share of the training rows in each cluster, shape ``(k,)``."""
        sizes = np.asarray(self.sizes, dtype=np.float64)
        return sizes / sizes.sum()


def series_to_arrow(frame: pd.DataFrame) -> pa.Array:
    """Turn a ``features`` column of series into Arrow ``list<list<float>>``.

    Raises
    ------
    InputError
        If the column is missing or a row is not a list of time steps.
    """
    if "features" not in frame.columns:
        raise InputError(
            f"Missing column 'features' in the model input; it has "
            f"{list(frame.columns)}. Pass a DataFrame with a 'features' column "
            "of series (a list of time steps, each a list of channel values)."
        )
    try:
        rows = [[list(map(float, step)) for step in row] for row in frame["features"]]
    except TypeError as exc:
        raise InputError(
            f"Invalid 'features' in the model input: expected each row to be a "
            f"list of time steps, each a list of channel values ({exc}). Pass "
            "series as nested lists, e.g. [[0.1], [0.3], [0.2]]."
        ) from exc
    return pa.array(rows, type=pa.list_(pa.list_(pa.float32())))


def features_to_numpy(frame: pd.DataFrame, input_dim: int) -> np.ndarray:
    """Stack a ``features`` column into a float32 array ``(rows, input_dim)``.

    Raises
    ------
    InputError
        If the column is missing or a row does not hold ``input_dim`` values.
    """
    if "features" not in frame.columns:
        raise InputError(
            f"Missing column 'features' in the model input; it has "
            f"{list(frame.columns)}. Pass a DataFrame with a 'features' column "
            f"of {input_dim} floats per row and an optional 'id' column."
        )
    lengths = frame["features"].map(len).to_numpy()
    wrong = np.flatnonzero(lengths != input_dim)
    if len(wrong):
        row = int(wrong[0])
        raise InputError(
            f"Invalid length of 'features' in row {row} of the model input: "
            f"expected {input_dim} values, got {int(lengths[row])}; "
            f"{len(wrong)} row(s) differ. The model was trained on rows of "
            f"{input_dim} features; pass features with that layout."
        )
    if len(frame) == 0:
        return np.zeros((0, input_dim), dtype=np.float32)
    features = np.stack(frame["features"].to_numpy()).astype(np.float32, copy=False)
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad.size:
        raise InputError(
            f"Invalid 'features' in the model input: row {int(bad[0])} (position "
            f"in the DataFrame) contains NaN or infinite values, in {bad.size} "
            "row(s) in all. Drop or impute those values before predict."
        )
    return features


def model_signature(id_type: str, series: bool = False) -> ModelSignature:
    """Return the signature: ``id`` (optional), ``features`` in; assignments out.

    Parameters
    ----------
    id_type : str
        MLflow type name of the ``id`` column, ``"long"`` or ``"string"``.
    series : bool
        Whether ``features`` contains series (time steps x channels) instead of
        one vector per row.
    """
    features = Array(DataType.double)
    if series:
        features = Array(features)
    inputs = Schema(
        [
            ColSpec(id_type, "id", required=False),
            ColSpec(features, "features"),
        ]
    )
    outputs = Schema(
        [
            ColSpec(id_type, "id", required=False),
            ColSpec(DataType.integer, "cluster"),
            ColSpec(DataType.double, "distance"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)
