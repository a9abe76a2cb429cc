"""Deep clustering on Apache Spark.

An autoencoder learns a compact embedding of a parquet feature table, trained
with pyspark's TorchDistributor; MLlib KMeans clusters the embedding; MLflow
tracks every run.
"""

import os

# MLflow 3 sends usage telemetry unless MLFLOW_DISABLE_TELEMETRY is true. The
# product turns it off, unless the user has set the variable themselves.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__version__ = "0.1.0"
