"""Reading stage: canonical feature tables, their checks, and training shards."""

from deepclust.read.table import FEATURE_TABLE_SCHEMA, TableSummary, read_feature_table

__all__ = ["FEATURE_TABLE_SCHEMA", "TableSummary", "read_feature_table"]
