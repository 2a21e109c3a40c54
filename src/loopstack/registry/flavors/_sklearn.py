"""scikit-learn estimators and pipelines, saved with joblib (pickle when joblib is absent)."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path
from typing import Any

from loopstack.errors import Invalid

from ._flavor import Flavor
from ._requirements import distributions_of, pin

__all__ = ["SklearnFlavor"]

_JOBLIB_FILE = "model.joblib"
_PICKLE_FILE = "model.pkl"


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
        if importlib.util.find_spec("joblib") is not None:
            import joblib

            joblib.dump(model, directory / _JOBLIB_FILE)
            serializer, file = "joblib", _JOBLIB_FILE
        else:
            with (directory / _PICKLE_FILE).open("wb") as stream:
                pickle.dump(model, stream, protocol=pickle.HIGHEST_PROTOCOL)
            serializer, file = "pickle", _PICKLE_FILE
        return {
            "serializer": serializer,
            "file": file,
            "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        }

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        path = directory / str(meta["file"])
        if meta["serializer"] == "joblib":
            import joblib

            return joblib.load(path)
        with path.open("rb") as stream:
            return pickle.load(stream)

    def requirements(self, model: Any) -> list[str]:
        pins = {pin("scikit-learn"), pin("numpy")}
        if importlib.util.find_spec("joblib") is not None:
            pins.add(pin("joblib"))
        # Steps from other libraries inside a pipeline must be importable too.
        parts = [model, *model.get_params(deep=True).values()]
        pins.update(distributions_of(parts))
        return sorted(pins)
