"""MLflow's ``loader_module`` for loopstack packages MLflow has no flavor for.

A package's ``MLmodel`` names this module in its ``python_function`` entry when
MLflow's own loaders cannot read the files or would predict differently
(TorchScript, state dicts, pickled objects, ONNX, LightGBM classifiers). Then
``mlflow.pyfunc.load_model(uri)`` calls :func:`_load_pyfunc` with the
downloaded directory, and the package loads exactly as ``ls.load_model``
loads it: every file's sha256 checked against the manifest first, then the
requirements, then the model.

>>> model = mlflow.pyfunc.load_model("models:/churn@champion")   # doctest: +SKIP
>>> model.predict(frame)                                          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._loaded import LoadedModel, load_package

__all__ = ["LoopstackPyfuncModel"]

# Written by the MLflow client beside a registered model it downloads; never read here.
_MLFLOW_ADDED = ("registered_model_meta",)


class LoopstackPyfuncModel:
    """A loopstack package behind MLflow's pyfunc ``predict(data, params=None)``."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded

    def get_raw_model(self) -> Any:
        """The framework's own model object, as MLflow's ``unwrap_python_model`` expects."""
        return self.loaded.model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        """The package's predictions for ``data`` (``params`` are not used)."""
        return self.loaded.predict(data)


def _load_pyfunc(path: str) -> LoopstackPyfuncModel:
    """What ``mlflow.pyfunc.load_model`` calls with the local model directory."""
    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    return LoopstackPyfuncModel(load_package(directory, tolerated=_MLFLOW_ADDED))
