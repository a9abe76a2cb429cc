"""File-system operations on any path Spark can reach (local, HDFS, S3, DBFS).

They go through Hadoop's ``FileSystem`` in the Spark driver's JVM, so the same
code works for ``file:``, ``hdfs:``, ``s3a:`` and ``dbfs:`` paths.
"""

from __future__ import annotations

import uuid

from pyspark.sql import SparkSession


def _hadoop_path(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, hadoop_path


def path_exists(spark: SparkSession, path: str) -> bool:
    """Return whether ``path`` exists."""
    fs, hadoop_path = _hadoop_path(spark, path)
    return bool(fs.exists(hadoop_path))


def paths_overlap(spark: SparkSession, first: str, second: str) -> bool:
    """Return whether two paths are one folder, or one lies inside the other.

    Both are qualified first, so relative and absolute forms of one folder
    compare equal. Symbolic links are not followed.
    """
    first_uri = qualify(spark, first).rstrip("/")
    second_uri = qualify(spark, second).rstrip("/")
    return (
        first_uri == second_uri
        or first_uri.startswith(second_uri + "/")
        or second_uri.startswith(first_uri + "/")
    )


def delete_path(spark: SparkSession, path: str) -> None:
    """Delete ``path`` and everything under it, if it exists."""
    fs, hadoop_path = _hadoop_path(spark, path)
    if fs.exists(hadoop_path):
        fs.delete(hadoop_path, True)


def qualify(spark: SparkSession, path: str) -> str:
    """Return ``path`` as a fully qualified URI, e.g. ``file:/abs/path``."""
    fs, hadoop_path = _hadoop_path(spark, path)
    return str(fs.makeQualified(hadoop_path).toString())


def staging_path(spark: SparkSession, final_path: str) -> str:
    """Return a new, unused sibling of ``final_path`` for staged writes."""
    fs, hadoop_path = _hadoop_path(spark, final_path)
    qualified = fs.makeQualified(hadoop_path)
    name = f".{qualified.getName()}.staging-{uuid.uuid4().hex[:12]}"
    return str(qualified.getParent().suffix("/" + name).toString())


def publish(spark: SparkSession, staged: str, final_path: str) -> None:
    """Move a staged folder to ``final_path``, replacing what was there.

    The earlier content is renamed aside first and deleted only after the new
    folder is in place, so a failure leaves either the old or the new output.
    On object stores without atomic rename this is a copy, not atomic.
    """
    fs, staged_path = _hadoop_path(spark, staged)
    _, target = _hadoop_path(spark, final_path)
    jvm = spark.sparkContext._jvm
    backup = None
    if fs.exists(target):
        backup = jvm.org.apache.hadoop.fs.Path(
            target.getParent(), f".{target.getName()}.old-{uuid.uuid4().hex[:12]}"
        )
        if not fs.rename(target, backup):
            raise OSError(f"Could not move {final_path} aside to replace it.")
    else:
        fs.mkdirs(target.getParent())
    if not fs.rename(staged_path, target):
        if backup is not None:
            fs.rename(backup, target)
        raise OSError(f"Could not move {staged} to {final_path}.")
    if backup is not None:
        fs.delete(backup, True)
