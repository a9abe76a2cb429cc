"""Read a parquet feature table with Spark and check it before any work.

The canonical feature table has one row per item:

========  ==========================  ==========================================
column    Spark type                  meaning
========  ==========================  ==========================================
id        long (or int, string)       unique, stable row id
features  array<float> (or double)    the feature vector; the same length in
                                      every row, no null, NaN or infinity
label     any atomic type, optional   ground truth used only for scoring
========  ==========================  ==========================================

A series table has ``features`` as ``array<array<float>>`` (time steps x
channels) instead; :mod:`deepclust.read.series` checks it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from deepclust.errors import InputError
from deepclust.read.series import (
    SERIES_TYPE,
    check_series_stats,
    is_series_type,
    series_stats,
)

_logger = logging.getLogger(__name__)

FEATURE_TABLE_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), nullable=False),
        T.StructField("features", T.ArrayType(T.FloatType(), False), nullable=False),
        T.StructField("label", T.LongType(), nullable=True),
    ]
)

_ID_TYPES = (T.LongType, T.IntegerType, T.ShortType, T.StringType)
_FEATURE_ELEMENT_TYPES = (T.FloatType, T.DoubleType)
_FIX_SCHEMA = (
    "Write the table with columns id (long), features (array<float>) and an "
    "optional label, e.g. with `deepclust prepare`."
)


@dataclass(frozen=True)
class TableSummary:
    """Facts about a checked feature table.

    Attributes
    ----------
    rows : int
        Number of rows.
    feature_dim : int
        Length of every ``features`` array; for a series table, the number of
        channels per time step.
    has_label : bool
        Whether the table has a ``label`` column.
    series_lengths : tuple of (int, int) or None
        Shortest and longest series in time steps, for a series table; None
        for a table of feature vectors.
    """

    rows: int
    feature_dim: int
    has_label: bool
    series_lengths: tuple | None = None


def read_feature_table(
    spark: SparkSession, path: str
) -> tuple[DataFrame, TableSummary]:
    """Read and check a parquet feature table.

    Returns
    -------
    df : DataFrame
        Columns ``id``, ``features`` as ``array<float>`` (``array<array<float>>``
        for a series table) and ``label`` if the table has one.
    summary : TableSummary

    Raises
    ------
    InputError
        If the path does not exist or contains no parquet, or a column is
        missing or of the wrong type. Also if the table is empty, an id is
        null or repeated, or a feature array is null, contains null, NaN or
        infinity, or differs in length from the others. For a series table,
        also if a series has no time steps or the channel counts differ. The
        message names the column or row id.
    """
    try:
        df = spark.read.parquet(path)
    except (AnalysisException, PySparkException, Py4JJavaError) as exc:
        # Spark's advice for this case, to give a schema, does not apply here.
        if "UNABLE_TO_INFER_SCHEMA" in str(exc):
            reason = "the folder contains no parquet files"
        else:
            reason = _first_line(exc)
        raise InputError(
            f"Cannot read the feature table at {path!r}: {reason}. Expected a "
            "folder or file of parquet; check data.path, or create the table "
            "with `deepclust prepare`."
        ) from exc
    check_schema(df, path)
    columns = ["id", "features"] + (["label"] if "label" in df.columns else [])
    if is_series_type(df.schema["features"].dataType):
        df = df.select(*columns).withColumn(
            "features", F.col("features").cast(SERIES_TYPE)
        )
        return df, check_series_rows(df, path)
    df = df.select(*columns).withColumn(
        "features", F.col("features").cast(T.ArrayType(T.FloatType()))
    )
    summary = check_rows(df, path)
    return df, summary


def check_schema(df: DataFrame, path: str) -> None:
    """Check the column names and types of a feature table."""
    fields = {f.name: f.dataType for f in df.schema.fields}
    for name in ("id", "features"):
        if name not in fields:
            raise InputError(
                f"Missing column {name!r} in the feature table at {path!r}; it has "
                f"{sorted(fields)}. {_FIX_SCHEMA}"
            )
    if not isinstance(fields["id"], _ID_TYPES):
        raise InputError(
            f"Invalid type of column 'id' in {path!r}: expected long, int or "
            f"string, got {fields['id'].simpleString()}. {_FIX_SCHEMA}"
        )
    features = fields["features"]
    if not (
        isinstance(features, T.ArrayType)
        and isinstance(features.elementType, _FEATURE_ELEMENT_TYPES)
    ) and not is_series_type(features):
        raise InputError(
            f"Invalid type of column 'features' in {path!r}: expected "
            f"array<float> or array<double> (array<array<float>> for series), "
            f"got {features.simpleString()}. {_FIX_SCHEMA}"
        )
    if "label" in fields and not isinstance(fields["label"], T.AtomicType):
        raise InputError(
            f"Invalid type of column 'label' in {path!r}: expected an atomic "
            f"type (long, string, ...), got {fields['label'].simpleString()}. "
            "Store one label per row, or drop the column."
        )


def check_rows(df: DataFrame, path: str) -> TableSummary:
    """Check the values of a feature table in one Spark aggregation.

    Only counts and one example id per problem come back to the driver.
    """
    bad_value = F.exists(
        "features",
        lambda x: x.isNull() | F.isnan(x) | (F.abs(x) == float("inf")),
    )
    size = F.size("features")
    stats = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col("id").isNull().cast("long")).alias("null_ids"),
        F.first(F.when(F.col("features").isNull(), F.col("id")), True).alias(
            "null_features_id"
        ),
        F.sum(F.col("features").isNull().cast("long")).alias("null_features"),
        F.first(F.when(bad_value, F.col("id")), True).alias("bad_value_id"),
        F.sum(bad_value.cast("long")).alias("bad_values"),
        # Ordering by (size, id) breaks ties, so the named ids are stable.
        F.min_by("id", F.struct(size, "id")).alias("shortest_id"),
        F.min(size).alias("min_size"),
        F.max_by("id", F.struct(size, "id")).alias("longest_id"),
        F.max(size).alias("max_size"),
    ).first()

    check_rows_and_ids(stats, path)
    if stats["null_features"]:
        raise InputError(
            f"Column 'features' is null in {stats['null_features']} row(s) of "
            f"{path!r}, e.g. row id {stats['null_features_id']!r}: expected an "
            "array in every row. Drop or impute those rows."
        )
    if stats["bad_values"]:
        raise InputError(
            f"Column 'features' contains null, NaN or infinite values in "
            f"{stats['bad_values']} row(s) of {path!r}, e.g. row id "
            f"{stats['bad_value_id']!r}: expected finite numbers. Drop or "
            "impute those values."
        )
    if stats["min_size"] != stats["max_size"]:
        raise InputError(
            f"Column 'features' has arrays of different lengths in {path!r}: "
            f"row id {stats['shortest_id']!r} has {stats['min_size']} values and "
            f"row id {stats['longest_id']!r} has {stats['max_size']}. Expected "
            "the same length in every row; pad or resample the features."
        )
    if stats["min_size"] == 0:
        raise InputError(
            f"Column 'features' has empty arrays in {path!r}, e.g. row id "
            f"{stats['shortest_id']!r}: expected at least one value per row."
        )
    check_unique_ids(df, path)
    return TableSummary(
        rows=stats["rows"],
        feature_dim=stats["min_size"],
        has_label="label" in df.columns,
    )


def check_rows_and_ids(stats, path: str) -> None:
    """Raise an InputError if the aggregated ``rows`` is 0 or ``null_ids`` is not."""
    if stats["rows"] == 0:
        raise InputError(
            f"The feature table at {path!r} is empty: expected at least one row. "
            "Check data.path and the job that wrote the table."
        )
    if stats["null_ids"]:
        raise InputError(
            f"Column 'id' in {path!r} has {stats['null_ids']} null value(s): "
            "expected a unique non-null id per row. Assign ids before clustering."
        )


def check_unique_ids(df: DataFrame, path: str) -> None:
    """Raise an InputError naming an id that occurs more than once."""
    duplicate = df.groupBy("id").count().filter(F.col("count") > 1).limit(1).collect()
    if duplicate:
        row = duplicate[0]
        raise InputError(
            f"Column 'id' in {path!r} repeats: id {row['id']!r} occurs "
            f"{row['count']} times. Expected unique ids; deduplicate the table."
        )


def check_series_rows(df: DataFrame, path: str) -> TableSummary:
    """Check the values and the ids of a series table."""
    stats = series_stats(df)
    check_rows_and_ids(stats, path)
    check_series_stats(stats, path)
    check_unique_ids(df, path)
    return TableSummary(
        rows=stats["rows"],
        feature_dim=stats["min_channels"],
        has_label="label" in df.columns,
        series_lengths=(stats["min_length"], stats["max_length"]),
    )


def _first_line(exc: Exception) -> str:
    if isinstance(exc, Py4JJavaError):
        # str() of a Py4JJavaError names only the JVM call, not the cause.
        text = str(exc.java_exception.toString()).strip()
    else:
        text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
