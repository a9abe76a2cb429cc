"""Register a trained model in the MLflow registry and find versions again."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from importlib import metadata

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from deepclust.errors import InputError
from deepclust.models.base import ModelSpec
from deepclust.registry.pyfunc import (
    CENTROIDS,
    SPEC,
    WEIGHTS,
    model_signature,
)

_logger = logging.getLogger(__name__)

CANDIDATE = "candidate"
CHAMPION = "champion"
MODEL_NAME_IN_RUN = "clustering_model"

# Training-run artifact of each pyfunc artifact.
_RUN_ARTIFACTS = {
    WEIGHTS: "model/autoencoder.pt",
    SPEC: "model/spec.json",
    CENTROIDS: "centroids.json",
}
_INPUT_EXAMPLE_ROWS = 3
# Logged as model code, so MLflow pickles no Python object (see ClusterModel).
MODEL_CODE = os.path.join(os.path.dirname(__file__), "model_code.py")
_REGISTRY_URI = re.compile(
    r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>.+)|/(?P<version>\d+))$"
)


@dataclass(frozen=True)
class ModelVersionRef:
    """A model to score with, resolved from its URI.

    Attributes
    ----------
    uri : str
        The URI as given, e.g. ``models:/deepclust@champion``.
    name : str or None
        Registered model name; None for a URI outside the registry.
    version : int or None
        Registered version number; None for a URI outside the registry.
    run_id : str or None
        The training run that logged the model, when the registry records it.
    """

    uri: str
    name: str | None
    version: int | None
    run_id: str | None


def register_trained_model(
    spark: SparkSession, run_id: str, model_name: str, table_path: str
) -> ModelVersionRef:
    """Log the training run's model as a pyfunc, register it, alias ``candidate``.

    Call it inside the active training run, after the run logged
    ``model/autoencoder.pt``, ``model/spec.json`` and ``centroids.json``.

    Parameters
    ----------
    run_id : str
        The active training run.
    model_name : str
        Registered model name (``registry.model_name``); created if missing.
    table_path : str
        The training feature table; its first rows become the input example.

    Returns
    -------
    ModelVersionRef
        The new version, with URI ``models:/<model_name>/<version>``.
    """
    with tempfile.TemporaryDirectory() as folder:
        artifacts = {
            key: mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=folder
            )
            for key, path in _RUN_ARTIFACTS.items()
        }
        with open(artifacts[SPEC], encoding="utf-8") as handle:
            spec = ModelSpec.from_json(handle.read())
        example, id_type = _input_example(spark, table_path)
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME_IN_RUN,
            python_model=MODEL_CODE,
            artifacts=artifacts,
            signature=model_signature(id_type, series=spec.family == "rnn"),
            input_example=example,
            registered_model_name=model_name,
            pip_requirements=_pip_requirements(),
            metadata={
                "model_family": spec.family,
                "feature_dim": spec.input_dim,
                "embedding_dim": spec.embedding_dim,
            },
        )
    version = int(info.registered_model_version)
    client = MlflowClient()
    client.set_registered_model_alias(model_name, CANDIDATE, version)
    _logger.info(
        "registry: model %r version %d from run %s has alias %r",
        model_name,
        version,
        run_id,
        CANDIDATE,
    )
    return ModelVersionRef(
        f"models:/{model_name}/{version}", model_name, version, run_id
    )


def resolve_model_uri(uri: str) -> ModelVersionRef:
    """Resolve a ``models:/`` URI to its registered version.

    Other URIs (``runs:/``, a local folder) pass through with no version.

    Raises
    ------
    InputError
        If the registered model, the alias or the version does not exist.
    """
    match = _REGISTRY_URI.match(uri)
    if not uri.startswith("models:/"):
        return ModelVersionRef(uri, None, None, None)
    if match is None:
        raise InputError(
            f"Invalid model URI {uri!r}: expected models:/<name>@<alias> or "
            "models:/<name>/<version>. Pass --model-uri in one of these forms."
        )
    name, alias, number = match["name"], match["alias"], match["version"]
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        raise InputError(
            f"Model URI {uri!r} not found: there is no registered model {name!r} "
            f"in {mlflow.get_tracking_uri()}. Train with registry.model_name: "
            f"{name}, or check the name and the tracking URI."
        ) from exc
    try:
        if alias is not None:
            version = client.get_model_version_by_alias(name, alias)
        else:
            version = client.get_model_version(name, number)
    except MlflowException as exc:
        raise InputError(
            f"Model URI {uri!r} not found: registered model {name!r} has no "
            f"{'alias ' + repr(alias) if alias else 'version ' + number}. "
            f"It has {describe_versions(client, name)}. Promote a version with "
            "`deepclust promote`, or pass --model-uri models:/<name>/<version>."
        ) from exc
    return ModelVersionRef(uri, name, int(version.version), version.run_id)


def describe_versions(client: MlflowClient, name: str) -> str:
    """Return e.g. ``versions [1, 2], aliases {'candidate': 2}`` for messages."""
    versions = client.search_model_versions(f"name = '{name}'")
    numbers = sorted(int(v.version) for v in versions)
    # Search results from the sqlite store leave ModelVersion.aliases empty;
    # the registered model lists them.
    listed = client.get_registered_model(name).aliases
    aliases = {alias: int(version) for alias, version in sorted(listed.items())}
    return f"versions {numbers}, aliases {aliases}"


def _input_example(spark: SparkSession, table_path: str) -> tuple[pd.DataFrame, str]:
    df = spark.read.parquet(table_path).select("id", "features")
    id_type = "string" if isinstance(df.schema["id"].dataType, T.StringType) else "long"
    rows = df.limit(_INPUT_EXAMPLE_ROWS).collect()
    example = pd.DataFrame(
        {
            "id": [row["id"] for row in rows],
            "features": [_plain_floats(row["features"]) for row in rows],
        }
    )
    if id_type == "long":
        example["id"] = example["id"].astype("int64")
    return example, id_type


def _plain_floats(values):
    """Return a feature array, or a series of steps, as nested lists of float."""
    return [_plain_floats(v) if isinstance(v, list) else float(v) for v in values]


def _pip_requirements() -> list[str]:
    # NOTE: deepclust is not on a package index, so MLflow cannot build an
    # environment for this model; load it where deepclust is installed
    # (env_manager="local" for spark_udf).
    packages = ("deepclust", "mlflow", "torch", "numpy", "pandas")
    return [f"{name}=={metadata.version(name)}" for name in packages]
