"""LightGBM boosters and its scikit-learn wrappers, saved as LightGBM's text model.

The scikit-learn wrappers cannot be rebuilt from the text model alone, so a
loaded wrapper is a ``LightGBMModel``: the booster plus the class labels,
predicting as ``LGBMClassifier``/``LGBMRegressor`` do.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from loopstack.errors import Invalid

from ._flavor import Flavor, MlflowEntry
from ._requirements import pin

__all__ = ["LightGBMFlavor", "LightGBMModel"]

_FILE = "model.txt"


class LightGBMModel:
    """A loaded LightGBM model: ``predict`` always, ``predict_proba`` for a classifier."""

    def __init__(self, booster: Any, classes: list[Any] | None) -> None:
        self.booster = booster
        self.classes_ = None if classes is None else np.asarray(classes)

    def _raw(self, inputs: Any) -> np.ndarray:
        return np.asarray(self.booster.predict(inputs))

    def predict(self, inputs: Any) -> np.ndarray:
        if self.classes_ is None:
            return self._raw(inputs)
        return self.classes_[np.argmax(self.predict_proba(inputs), axis=1)]

    def predict_proba(self, inputs: Any) -> np.ndarray:
        if self.classes_ is None:
            raise AttributeError("predict_proba")
        scores = self._raw(inputs)
        if scores.ndim == 1:  # binary objective: probability of the second class
            return np.column_stack([1.0 - scores, scores])
        return scores


class LightGBMFlavor(Flavor):
    """``lightgbm.Booster``, ``LGBMClassifier`` and ``LGBMRegressor``."""

    name = "lightgbm"

    def matches(self, model: object) -> bool:
        if "lightgbm" not in sys.modules:
            return False
        import lightgbm

        return isinstance(model, lightgbm.Booster | lightgbm.LGBMModel)

    def save(self, model: Any, directory: Path, *, sample_input: Any = None) -> dict[str, Any]:
        import lightgbm

        if isinstance(model, lightgbm.Booster):
            booster, kind, classes = model, "booster", None
        elif isinstance(model, lightgbm.LGBMClassifier):
            booster, kind = model.booster_, "classifier"
            classes = np.asarray(model.classes_).tolist()
        elif isinstance(model, lightgbm.LGBMRegressor):
            booster, kind, classes = model.booster_, "regressor", None
        else:
            raise Invalid(
                "the lightgbm flavor packages a lightgbm.Booster, LGBMClassifier or "
                f"LGBMRegressor; got {type(model).__name__}",
                field="flavor",
            )
        (directory / _FILE).write_text(booster.model_to_string(), encoding="utf-8")
        return {"file": _FILE, "kind": kind, "classes": classes}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        import lightgbm

        text = (directory / str(meta["file"])).read_text(encoding="utf-8")
        booster = lightgbm.Booster(model_str=text)
        if meta["kind"] == "booster":
            return booster
        return LightGBMModel(booster, meta["classes"] if meta["kind"] == "classifier" else None)

    def requirements(self, model: Any) -> list[str]:
        return [pin("lightgbm")]

    def mlflow_entry(self, meta: dict[str, Any]) -> MlflowEntry | None:
        import lightgbm

        # MLflow rebuilds only a Booster from the text model. A regressor predicts as its
        # booster does; a classifier's booster gives probabilities, not labels, so its
        # pyfunc entry names loopstack's loader (mlflow.lightgbm.load_model gives the booster).
        file = str(meta["file"])
        same_predictions = meta["kind"] != "classifier"
        return MlflowEntry(
            name="lightgbm",
            config={
                "data": file,
                "model_class": "lightgbm.basic.Booster",
                "lgb_version": lightgbm.__version__,
                "code": None,
            },
            pyfunc={"loader_module": "mlflow.lightgbm", "data": file} if same_predictions else None,
        )

    def has_proba(self, loaded: Any) -> bool:
        return isinstance(loaded, LightGBMModel) and loaded.classes_ is not None
