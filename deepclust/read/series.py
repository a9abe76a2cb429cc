"""Checks of series feature tables: ``features`` as ``array<array<float>>``.

A series table stores one time series per row, time steps x channels. Series
may differ in length; every time step of every row has the same number of
channels, and no value is null, NaN or infinite.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepclust.errors import InputError

SERIES_TYPE = T.ArrayType(T.ArrayType(T.FloatType()))
_ELEMENT_TYPES = (T.FloatType, T.DoubleType)


def is_series_type(data_type: T.DataType) -> bool:
    """Return whether a column type is ``array<array<float or double>>``."""
    return (
        isinstance(data_type, T.ArrayType)
        and isinstance(data_type.elementType, T.ArrayType)
        and isinstance(data_type.elementType.elementType, _ELEMENT_TYPES)
    )


def series_stats(df: DataFrame):
    """Compute the counts that the series checks need in one Spark aggregation.

    Parameters
    ----------
    df : DataFrame
        ``id`` and ``features`` as ``array<array<float>>``.

    Returns
    -------
    Row
        Counts and one example row id per problem, plus ``rows``,
        ``min_channels``, ``max_channels``, ``min_length`` and ``max_length``.
    """
    bad_value = F.exists(
        "features",
        lambda step: (
            step.isNull()
            | F.exists(
                step, lambda x: x.isNull() | F.isnan(x) | (F.abs(x) == float("inf"))
            )
        ),
    )
    channels = F.transform("features", lambda step: F.size(step))
    min_channels = F.array_min(channels)
    max_channels = F.array_max(channels)
    length = F.size("features")
    return df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col("id").isNull().cast("long")).alias("null_ids"),
        F.sum(F.col("features").isNull().cast("long")).alias("null_series"),
        F.first(F.when(F.col("features").isNull(), F.col("id")), True).alias(
            "null_series_id"
        ),
        F.first(F.when(length == 0, F.col("id")), True).alias("empty_id"),
        F.sum((length == 0).cast("long")).alias("empty"),
        F.first(F.when(bad_value, F.col("id")), True).alias("bad_value_id"),
        F.sum(bad_value.cast("long")).alias("bad_values"),
        # Ordering by (count, id) breaks ties, so the named ids are stable.
        F.min_by("id", F.struct(min_channels, "id")).alias("fewest_channels_id"),
        F.min(min_channels).alias("min_channels"),
        F.max_by("id", F.struct(max_channels, "id")).alias("most_channels_id"),
        F.max(max_channels).alias("max_channels"),
        F.min(F.when(length > 0, length)).alias("min_length"),
        F.max(length).alias("max_length"),
    ).first()


def check_series_stats(stats, path: str) -> None:
    """Raise an InputError for the first problem that :func:`series_stats` found.

    The problems are a null series, a series with no time steps, a null,
    NaN or infinite value, and time steps with different or zero channel
    counts. The message names a row id.
    """
    if stats["null_series"]:
        raise InputError(
            f"Column 'features' is null in {stats['null_series']} row(s) of "
            f"{path!r}, e.g. row id {stats['null_series_id']!r}: expected a series "
            "in every row. Drop those rows."
        )
    if stats["empty"]:
        raise InputError(
            f"Column 'features' has {stats['empty']} series with no time steps in "
            f"{path!r}, e.g. row id {stats['empty_id']!r}: expected at least one "
            "time step per series. Drop the empty series."
        )
    if stats["bad_values"]:
        raise InputError(
            f"Column 'features' contains null, NaN or infinite values in "
            f"{stats['bad_values']} series of {path!r}, e.g. row id "
            f"{stats['bad_value_id']!r}: expected finite numbers at every time "
            "step. Impute the gaps, or drop those series."
        )
    if stats["min_channels"] != stats["max_channels"] or stats["min_channels"] == 0:
        raise InputError(
            f"Column 'features' has time steps with different channel counts in "
            f"{path!r}: row id {stats['fewest_channels_id']!r} has a step with "
            f"{stats['min_channels']} value(s) and row id "
            f"{stats['most_channels_id']!r} one with {stats['max_channels']}. "
            "Expected the same number of channels (at least 1) at every time "
            "step of every series; give each step all channels."
        )
