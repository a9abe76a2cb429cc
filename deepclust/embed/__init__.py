"""Embedding stage: the trained encoder applied to a table inside Spark."""

from deepclust.embed.files import embed_parquet
from deepclust.embed.spark import embed_table

__all__ = ["embed_parquet", "embed_table"]
