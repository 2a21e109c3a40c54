"""XGBoost boosters and its scikit-learn wrappers, saved in XGBoost's own JSON format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from loopstack.errors import Invalid

from ._flavor import Flavor, MlflowEntry
from ._requirements import pin

__all__ = ["XGBoostFlavor"]

_FILE = "model.json"


class XGBoostFlavor(Flavor):
    """``xgboost.Booster`` and the ``XGBModel`` wrappers (``XGBClassifier``, ``XGBRegressor``)."""

    name = "xgboost"

    def matches(self, model: object) -> bool:
        if "xgboost" not in sys.modules:
            return False
        import xgboost

        return isinstance(model, xgboost.Booster | xgboost.XGBModel)

    def save(self, model: Any, directory: Path, *, sample_input: Any = None) -> dict[str, Any]:
        import xgboost

        if not self.matches(model):
            raise Invalid(
                "the xgboost flavor packages an xgboost.Booster or XGBModel; "
                f"got {type(model).__name__}",
                field="flavor",
            )
        class_name = type(model).__name__
        if getattr(xgboost, class_name, None) is not type(model):
            raise Invalid(
                f"the xgboost flavor packages xgboost's own classes; got {class_name} "
                f"from {type(model).__module__} (subclasses cannot be rebuilt from the JSON model)",
                field="flavor",
            )
        model.save_model(str(directory / _FILE))
        return {"file": _FILE, "class": class_name}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        import xgboost

        class_name = str(meta["class"])
        cls = getattr(xgboost, class_name, None)
        if not isinstance(cls, type):
            raise Invalid(
                f"the xgboost model was saved from xgboost.{class_name}, which this xgboost "
                f"({xgboost.__version__}) does not have",
                field="flavor",
            )
        path = str(directory / str(meta["file"]))
        if cls is xgboost.Booster:
            return xgboost.Booster(model_file=path)
        model = cls()
        model.load_model(path)
        return model

    def requirements(self, model: Any) -> list[str]:
        return [pin("xgboost")]

    def mlflow_entry(self, meta: dict[str, Any]) -> MlflowEntry | None:
        import xgboost

        cls = getattr(xgboost, str(meta["class"]), None)
        if not isinstance(cls, type):
            return None
        file = str(meta["file"])
        return MlflowEntry(
            name="xgboost",
            config={
                "data": file,
                "model_class": f"{cls.__module__}.{cls.__qualname__}",
                "model_format": file.rsplit(".", 1)[-1],
                "xgb_version": xgboost.__version__,
                "code": None,
            },
            pyfunc={"loader_module": "mlflow.xgboost", "data": file},
        )

    def predict(self, loaded: Any, inputs: Any) -> np.ndarray:
        import xgboost

        if isinstance(loaded, xgboost.Booster):
            return np.asarray(loaded.predict(xgboost.DMatrix(inputs)))
        return np.asarray(loaded.predict(inputs))
