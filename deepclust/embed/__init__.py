"""Embedding stage: the trained encoder applied to a table inside Spark."""

from deepclust.embed.spark import embed_table

__all__ = ["embed_table"]
