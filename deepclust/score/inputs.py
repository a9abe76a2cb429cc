"""Load the model to score with and check the input table against it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.types import Schema
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from deepclust.errors import InputError
from deepclust.read.series import SERIES_TYPE, is_series_type
from deepclust.read.table import check_rows, check_series_rows
from deepclust.registry import ClusterModel, ModelVersionRef

_logger = logging.getLogger(__name__)

_ID_TYPES = {
    "long": (T.LongType, T.IntegerType, T.ShortType),
    "string": (T.StringType,),
}
_FEATURE_ELEMENT_TYPES = (T.FloatType, T.DoubleType)


@dataclass(frozen=True)
class ScoringModel:
    """A loaded clustering model and where it came from.

    Attributes
    ----------
    ref : ModelVersionRef
        The URI and, for the registry, name, version and training run.
    model : ClusterModel
        The loaded pyfunc: ``spec``, ``weights`` (bytes), ``centroids``
        (k x embedding_dim) and the training ``sizes`` per cluster.
    input_schema : mlflow.types.Schema
        The input part of the model's signature.
    """

    ref: ModelVersionRef
    model: ClusterModel
    input_schema: Schema


def load_cluster_model(ref: ModelVersionRef) -> ScoringModel:
    """Load a registered clustering model on the driver, with no environment.

    A ``models:/`` URI loads by its resolved version number, so an alias moved
    meanwhile cannot swap the model between resolving and loading.

    Raises
    ------
    InputError
        If the URI cannot be loaded or is not a deepclust clustering model.
    """
    uri = f"models:/{ref.name}/{ref.version}" if ref.version is not None else ref.uri
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        raise InputError(
            f"Cannot load the model at {ref.uri!r}: "
            f"{str(exc).splitlines()[0].rstrip('.')}. Expected a model logged "
            "by `deepclust train`, e.g. "
            "models:/<name>@champion; check --model-uri and the tracking URI."
        ) from exc
    model = pyfunc.unwrap_python_model()
    if not isinstance(model, ClusterModel):
        raise InputError(
            f"Invalid model at {ref.uri!r}: expected a deepclust clustering model, "
            f"got a pyfunc of {type(model).__name__}. Pass the URI of a model "
            "registered by `deepclust train`."
        )
    return ScoringModel(ref, model, pyfunc.metadata.get_input_schema())


def read_scoring_input(
    spark: SparkSession, path: str, loaded: ScoringModel
) -> tuple[DataFrame, int]:
    """Read the table to score and check it against the model's signature.

    Returns
    -------
    df : DataFrame
        ``id`` (as in the table) and ``features`` (array<float>).
    rows : int
        Number of rows.

    Raises
    ------
    InputError
        If the table cannot be read, lacks a column of the signature or has
        one of another type, is empty, has null, NaN or infinite features or
        repeated ids, or its feature length differs from the model's.
    """
    try:
        df = spark.read.parquet(path)
    except AnalysisException as exc:
        raise InputError(
            f"Cannot read the input table at {path!r}: "
            f"{str(exc).strip().splitlines()[0]}. Expected a folder of parquet "
            "with columns id and features; check --input."
        ) from exc
    check_signature(df.schema, loaded, path)
    input_dim = loaded.model.spec.input_dim
    series = loaded.model.spec.family == "rnn"
    feature_type = SERIES_TYPE if series else T.ArrayType(T.FloatType())
    df = df.select("id", F.col("features").cast(feature_type))
    if df.isEmpty():
        raise InputError(
            f"The input table at {path!r} is empty: expected at least one row "
            "to score. Check --input and the job that writes the table for "
            "this date; nothing was written."
        )
    summary = check_series_rows(df, path) if series else check_rows(df, path)
    if summary.feature_dim != input_dim:
        raise InputError(
            f"Invalid length of column 'features' in {path!r}: model "
            f"{loaded.ref.uri!r} expects {input_dim} values per row, got "
            f"{summary.feature_dim}. Score a table with the feature layout the "
            "model was trained on, or train a model on this layout."
        )
    return df, summary.rows


def check_signature(schema: T.StructType, loaded: ScoringModel, path: str) -> None:
    """Check the column names and types of ``schema`` against the model's.

    ``id`` is optional in the signature for ad-hoc ``predict`` calls but
    required here, because the output is keyed by it.
    """
    fields = {field.name: field.dataType for field in schema.fields}
    expected = describe_signature(loaded)
    model_uri = loaded.ref.uri
    for spec in loaded.input_schema.inputs:
        if spec.name not in fields:
            raise InputError(
                f"Missing column {spec.name!r} in the input table at {path!r}; it "
                f"has {sorted(fields)}. Model {model_uri!r} expects {expected}. "
                "Write the table with these columns."
            )
        if not _type_matches(spec.name, _type_name(spec.type), fields[spec.name]):
            raise InputError(
                f"Invalid type of column {spec.name!r} in {path!r}: got "
                f"{fields[spec.name].simpleString()}, but model {model_uri!r} "
                f"expects {expected}. Cast the column or rewrite the table."
            )


def describe_signature(loaded: ScoringModel) -> str:
    """Return e.g. ``id (long), features (array<float> of 4 values)``."""
    parts = []
    for spec in loaded.input_schema.inputs:
        if spec.name == "features":
            dim = loaded.model.spec.input_dim
            parts.append(f"features (array<float> of {dim} values)")
        else:
            parts.append(f"{spec.name} ({_type_name(spec.type)})")
    return ", ".join(parts)


def _type_name(mlflow_type) -> str:
    return getattr(mlflow_type, "name", str(mlflow_type))


def _type_matches(name: str, signature_type: str, actual: T.DataType) -> bool:
    if name == "features":
        # A series model's signature has nested arrays, a vector model's not.
        if is_series_type(actual):
            return signature_type.startswith("Array(Array(")
        if signature_type.startswith("Array(Array("):
            return False
        return isinstance(actual, T.ArrayType) and isinstance(
            actual.elementType, _FEATURE_ELEMENT_TYPES
        )
    return isinstance(actual, _ID_TYPES.get(signature_type, ()))
