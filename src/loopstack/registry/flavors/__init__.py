"""Model packaging with flavors: save a model in its framework's format, load it back safely.

``package_model`` detects the flavor (XGBoost, LightGBM, PyTorch, ONNX,
scikit-learn, or any object with ``predict``), writes the model and a
``loopstack-model.json`` manifest (signature, requirements, sha256 of every
file) and an ``MLmodel`` with MLflow's environment files, so the MLflow
client loads the same package (``mlflow_pyfunc`` is its loader module where
MLflow has no flavor of its own); ``load_package`` checks every digest and
requirement before anything is deserialised, and returns a ``LoadedModel``
whose ``predict`` checks its input against the signature. No ML framework is imported until a flavor
needs it.
"""

from __future__ import annotations

from ._catalog import FLAVORS, detect_flavor, get_flavor
from ._digests import MANIFEST_NAME
from ._enforce import enforce_signature
from ._flavor import Flavor
from ._lightgbm import LightGBMFlavor, LightGBMModel
from ._loaded import LoadedModel, load_package
from ._manifest import FORMAT_VERSION, ModelPackage
from ._onnx import OnnxFlavor, OnnxPredictor
from ._package import package_model
from ._pyfunc import PyfuncFlavor
from ._requirements import RequirementMismatchWarning
from ._signature import ColumnSpec, Signature, TensorSpec, infer_signature
from ._sklearn import SklearnFlavor
from ._torch import TorchFlavor, TorchStateDict
from ._xgboost import XGBoostFlavor

__all__ = [
    "ColumnSpec",
    "FLAVORS",
    "FORMAT_VERSION",
    "Flavor",
    "LightGBMFlavor",
    "LightGBMModel",
    "LoadedModel",
    "MANIFEST_NAME",
    "ModelPackage",
    "OnnxFlavor",
    "OnnxPredictor",
    "PyfuncFlavor",
    "RequirementMismatchWarning",
    "Signature",
    "SklearnFlavor",
    "TensorSpec",
    "TorchFlavor",
    "TorchStateDict",
    "XGBoostFlavor",
    "detect_flavor",
    "enforce_signature",
    "get_flavor",
    "infer_signature",
    "load_package",
    "package_model",
]
