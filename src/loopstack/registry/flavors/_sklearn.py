"""scikit-learn estimators and pipelines, pickled as ``model.pkl`` the way MLflow reads them.

The file is a cloudpickle (a plain pickle when cloudpickle is absent), which is
what ``mlflow.sklearn`` loads given ``serialization_format``. Packages written
by older loopstack versions hold a ``model.joblib`` and still load.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path
from typing import Any

from loopstack.errors import Invalid

from ._flavor import Flavor, MlflowEntry
from ._requirements import distributions_of, pin

__all__ = ["SklearnFlavor"]

_PICKLE_FILE = "model.pkl"


def _has_cloudpickle() -> bool:
    return importlib.util.find_spec("cloudpickle") is not None


class SklearnFlavor(Flavor):
    """Any fitted ``sklearn.base.BaseEstimator``, ``Pipeline`` included."""

    name = "sklearn"

    def matches(self, model: object) -> bool:
        if "sklearn" not in sys.modules:
            return False
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def save(self, model: Any, directory: Path, *, sample_input: Any = None) -> dict[str, Any]:
        if not self.matches(model):
            raise Invalid(
                f"the sklearn flavor packages scikit-learn estimators; got {type(model).__name__}",
                field="flavor",
            )
        with (directory / _PICKLE_FILE).open("wb") as stream:
            if _has_cloudpickle():
                import cloudpickle

                cloudpickle.dump(model, stream, protocol=pickle.DEFAULT_PROTOCOL)
                serializer = "cloudpickle"
            else:
                pickle.dump(model, stream, protocol=pickle.DEFAULT_PROTOCOL)
                serializer = "pickle"
        return {
            "serializer": serializer,
            "file": _PICKLE_FILE,
            "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        }

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        path = directory / str(meta["file"])
        if meta["serializer"] == "joblib":  # packages written before model.pkl
            import joblib

            return joblib.load(path)
        # cloudpickle writes ordinary pickles; its own reducers are imported on demand.
        with path.open("rb") as stream:
            return pickle.load(stream)

    def requirements(self, model: Any) -> list[str]:
        pins = {pin("scikit-learn"), pin("numpy")}
        if _has_cloudpickle():
            pins.add(pin("cloudpickle"))
        # Steps from other libraries inside a pipeline must be importable too.
        parts = [model, *model.get_params(deep=True).values()]
        pins.update(distributions_of(parts))
        return sorted(pins)

    def mlflow_entry(self, meta: dict[str, Any]) -> MlflowEntry | None:
        if meta.get("serializer") not in ("pickle", "cloudpickle"):
            return None
        import sklearn

        file = str(meta["file"])
        return MlflowEntry(
            name="sklearn",
            config={
                "pickled_model": file,
                "serialization_format": meta["serializer"],
                "sklearn_version": sklearn.__version__,
                "code": None,
            },
            pyfunc={"loader_module": "mlflow.sklearn", "model_path": file},
        )
