"""Embed a feature table in batches with ``mapInArrow``.

The model spec and weights are broadcast once. Each task builds the encoder
once and runs it on every Arrow batch of its partition, reading the features
straight from the Arrow buffers (no Python objects per row).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import torch
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from deepclust.models.base import ModelSpec, load_autoencoder


def embed_table(
    df: DataFrame, spec: ModelSpec, weights: bytes, batch_rows: int = 10_000
) -> DataFrame:
    """Return ``id`` and ``embedding`` (array<float>) for every row of ``df``.

    Parameters
    ----------
    df : DataFrame
        Columns ``id`` and ``features`` (array<float>, equal lengths; or
        array<array<float>> series for the rnn family).
    spec, weights
        The autoencoder, as returned by training.
    batch_rows : int
        Maximum rows per forward pass. Spark's Arrow batches hold at most
        ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows (10,000 by
        default), so larger values have no effect beyond that.

    Returns
    -------
    DataFrame
        ``id`` (same type as in ``df``), ``embedding`` (array<float> of length
        ``spec.embedding_dim``); one row per input row.
    """
    broadcast = df.sparkSession.sparkContext.broadcast((spec.to_json(), weights))
    embed = functools.partial(embed_batches, broadcast=broadcast, batch_rows=batch_rows)
    schema = embedding_schema(df.schema["id"])
    return df.select("id", "features").mapInArrow(embed, schema)


def embedding_schema(id_field: T.StructField) -> T.StructType:
    """Return the output schema of the embedding stage: ``id``, ``embedding``."""
    return T.StructType(
        [
            T.StructField("id", id_field.dataType, id_field.nullable),
            T.StructField("embedding", T.ArrayType(T.FloatType(), False), False),
        ]
    )


def embed_batches(
    batches: Iterator[pa.RecordBatch], broadcast, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Embed Arrow batches of ``id``, ``features`` on an executor.

    Builds the model once per call, that is once per task.
    """
    model = load_task_model(broadcast)
    for arrow_batch in batches:
        yield from embed_record_batch(model, arrow_batch, batch_rows)


def load_task_model(broadcast):
    """Build the broadcast encoder in a task and give torch the task's cores."""
    spec_json, weights = broadcast.value
    model = load_autoencoder(ModelSpec.from_json(spec_json), weights)
    torch.set_num_threads(_task_cpus())
    return model


def embed_record_batch(
    model, arrow_batch: pa.RecordBatch, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Yield ``id``, ``embedding`` batches of at most ``batch_rows`` rows."""
    for start in range(0, arrow_batch.num_rows, batch_rows):
        yield _embed_batch(model, arrow_batch.slice(start, batch_rows))


def _embed_batch(model, batch: pa.RecordBatch) -> pa.RecordBatch:
    features = model.batch_from_arrow(batch.column(1))
    with torch.inference_mode():
        embedding = model.embed(features).numpy()
    return pa.RecordBatch.from_arrays(
        [batch.column(0), fixed_rows_to_list(embedding)], names=["id", "embedding"]
    )


def fixed_rows_to_list(values: np.ndarray) -> pa.ListArray:
    """Turn a 2-d float array into an Arrow ``list<float>`` column, zero-copy."""
    rows, width = values.shape
    offsets = pa.array(np.arange(0, (rows + 1) * width, width, dtype=np.int32))
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).ravel())
    return pa.ListArray.from_arrays(offsets, flat)


def _task_cpus() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is not None:
        return max(1, int(context.cpus()))
    return max(1, torch.get_num_threads())
