"""Embed a parquet feature table whose files the Spark tasks read with pyarrow.

:func:`deepclust.embed.embed_table` receives the features from Spark, which
decodes the parquet into rows and then writes every value into Arrow for the
Python worker. For 784 floats per row, that conversion took about as long as
the encoder itself (``benchmarks/embed_throughput.py``). Here each Spark task
reads its share of the parquet row groups straight into Arrow with pyarrow,
as the training ranks do, and only the embeddings pass through Spark.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from deepclust.embed.spark import (
    embed_record_batch,
    embedding_schema,
    load_task_model,
)

_logger = logging.getLogger(__name__)


def embed_parquet(
    spark: SparkSession,
    path: str,
    spec,
    weights: bytes,
    batch_rows: int = 10_000,
) -> DataFrame:
    """Return ``id`` and ``embedding`` for every row of a parquet feature table.

    Gives the same rows as :func:`deepclust.embed.embed_table` on
    ``read_feature_table(spark, path)``, but each task reads the ``id`` and
    ``features`` columns of its parquet row groups itself.

    Parameters
    ----------
    path : str
        The feature table, as given to ``spark.read.parquet``. Its files must
        be readable by pyarrow from the executors, like the training snapshot
        (local paths, ``file:``, ``hdfs:`` with libhdfs, ``s3:``; not
        ``s3a:``).
    spec, weights
        The autoencoder, as returned by training.
    batch_rows : int
        Maximum rows per forward pass, and per parquet read.

    Returns
    -------
    DataFrame
        ``id`` (the table's type), ``embedding`` (array<float> of length
        ``spec.embedding_dim``); one row per table row, in one partition per
        task.
    """
    table = spark.read.parquet(path)
    id_field = table.schema["id"]
    row_groups = list_row_groups(table.inputFiles())
    tasks = max(1, min(len(row_groups), spark.sparkContext.defaultParallelism))
    _logger.info(
        "embed: %d row group(s) of %s in %d task(s)", len(row_groups), path, tasks
    )
    embed = functools.partial(
        embed_row_groups,
        shares=[row_groups[task::tasks] for task in range(tasks)],
        broadcast=spark.sparkContext.broadcast((spec.to_json(), weights)),
        id_type=_arrow_type(spark, id_field.dataType),
        batch_rows=batch_rows,
    )
    task_ids = spark.range(0, tasks, 1, numPartitions=tasks)
    return task_ids.mapInArrow(embed, embedding_schema(id_field))


def list_row_groups(files: list[str]) -> list[tuple[str, int]]:
    """Return ``(file, row group index)`` for every row group of ``files``.

    Reads each parquet footer on the driver; ``files`` are URIs as returned by
    ``DataFrame.inputFiles``.
    """
    row_groups = []
    for uri in sorted(files):
        filesystem, file_path = pafs.FileSystem.from_uri(uri)
        metadata = pq.read_metadata(file_path, filesystem=filesystem)
        row_groups += [(uri, index) for index in range(metadata.num_row_groups)]
    return row_groups


def embed_row_groups(
    batches: Iterator[pa.RecordBatch],
    shares: list,
    broadcast,
    id_type: pa.DataType,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """Read and embed the row groups of each task id in ``batches``.

    ``batches`` carry task ids from ``spark.range``; task ``i`` reads the
    ``(file, row group)`` pairs ``shares[i]``. Builds the model once per call,
    that is once per Spark task.
    """
    model = load_task_model(broadcast)
    for task_batch in batches:
        for task in task_batch.column(0).to_pylist():
            for uri, row_group in shares[task]:
                for batch in _read_row_group(uri, row_group, id_type, batch_rows):
                    yield from embed_record_batch(model, batch, batch_rows)


def _read_row_group(uri, row_group, id_type, batch_rows):
    filesystem, file_path = pafs.FileSystem.from_uri(uri)
    with filesystem.open_input_file(file_path) as handle:
        parquet = pq.ParquetFile(handle)
        features_type = _float32_elements(parquet.schema_arrow.field("features").type)
        for batch in parquet.iter_batches(
            batch_size=batch_rows, row_groups=[row_group], columns=["id", "features"]
        ):
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("id").cast(id_type),
                    batch.column("features").cast(features_type),
                ],
                names=["id", "features"],
            )


def _float32_elements(arrow_type: pa.DataType) -> pa.DataType:
    """Return ``arrow_type`` with float32 leaves: list<double> -> list<float>."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return pa.list_(_float32_elements(arrow_type.value_type))
    return pa.float32()


def _arrow_type(spark: SparkSession, spark_type: T.DataType) -> pa.DataType:
    from pyspark.sql.pandas.types import to_arrow_type

    large = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")
    return to_arrow_type(spark_type, prefers_large_types=large.lower() == "true")
