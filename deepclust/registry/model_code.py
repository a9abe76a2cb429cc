"""Model code that MLflow stores in each registered version and runs at load.

``mlflow.pyfunc.log_model(python_model=<this file>)`` copies this file into the
model folder instead of pickling a Python object; loading the model runs it.
"""

import mlflow

from deepclust.registry.pyfunc import ClusterModel

mlflow.models.set_model(ClusterModel())
