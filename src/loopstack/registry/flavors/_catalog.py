"""The known flavors, by name and in the order a model is matched against them.

Most specific first: XGBoost and LightGBM wrappers are also scikit-learn
estimators, and nearly everything has a ``predict``, so ``pyfunc`` is last.
"""

from __future__ import annotations

from loopstack.errors import Invalid

from ._flavor import Flavor
from ._lightgbm import LightGBMFlavor
from ._onnx import OnnxFlavor
from ._pyfunc import PyfuncFlavor
from ._sklearn import SklearnFlavor
from ._torch import TorchFlavor
from ._xgboost import XGBoostFlavor

__all__ = ["FLAVORS", "detect_flavor", "get_flavor"]

FLAVORS: tuple[Flavor, ...] = (
    XGBoostFlavor(),
    LightGBMFlavor(),
    TorchFlavor(),
    OnnxFlavor(),
    SklearnFlavor(),
    PyfuncFlavor(),
)

_BY_NAME = {flavor.name: flavor for flavor in FLAVORS}


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``; ``Invalid`` naming the valid ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise Invalid(
            f"unknown model flavor {name!r}; expected one of {', '.join(sorted(_BY_NAME))}",
            field="flavor",
        ) from None


def detect_flavor(model: object) -> Flavor:
    """The first flavor that matches ``model``; ``Invalid`` if none does."""
    for flavor in FLAVORS:
        if flavor.matches(model):
            return flavor
    raise Invalid(
        f"cannot package a {type(model).__module__}.{type(model).__qualname__}: it is not a "
        f"model of a known framework ({', '.join(f.name for f in FLAVORS[:-1])}) and has no "
        "predict method",
        field="model",
    )
