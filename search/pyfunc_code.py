"""The models-from-code file of a kept model's MLflow model (see `search.pyfunc`)."""

import mlflow

from search.pyfunc import KeptModel

mlflow.models.set_model(KeptModel())
