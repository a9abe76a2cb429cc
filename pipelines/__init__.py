"""Pipelines: the deepclust stages composed into jobs."""
