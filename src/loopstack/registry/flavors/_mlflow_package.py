"""Loading a model an MLflow client logged: a directory with an ``MLmodel`` file.

Such a package carries no loopstack manifest, so the digests the registry recorded
when the version was registered are the only trustworthy list of its files: every
file is checked against them (``ArtifactCorrupted`` on any difference) before anything
is read. Then the ``MLmodel`` file says how to load it: scikit-learn's skops file or
pickle (``model.skops``, ``model.pkl``) and XGBoost's own format (``model.ubj``, ``.json``) are
read directly; any other flavor (a custom ``mlflow.pyfunc.PythonModel``) through the
installed ``mlflow`` package's ``pyfunc.load_model``, or ``Invalid`` without it.
"""

from __future__ import annotations

import importlib.util
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopstack.errors import ArtifactCorrupted, Invalid

from ._digests import verify_files
from ._flavor import Flavor
from ._manifest import ModelPackage
from ._xgboost import XGBoostFlavor

__all__ = ["MLMODEL_NAME", "MlflowFlavor", "is_mlflow_package", "load_mlflow_package"]

MLMODEL_NAME = "MLmodel"


def is_mlflow_package(directory: Path) -> bool:
    """Whether ``directory`` is in MLflow's layout (an ``MLmodel``, no loopstack manifest)."""
    from ._digests import MANIFEST_NAME

    return (directory / MLMODEL_NAME).is_file() and not (directory / MANIFEST_NAME).is_file()


class MlflowFlavor(Flavor):
    """Predicts with what an MLflow-format package loads to (an estimator or a pyfunc)."""

    name = "mlflow"

    def matches(self, model: object) -> bool:
        return False  # loopstack never writes this layout itself

    def save(self, model: Any, directory: Path, *, sample_input: Any = None) -> dict[str, Any]:
        raise Invalid("MLflow-format packages are written by the mlflow client", field="flavor")

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        kind = meta["kind"]
        if kind == "sklearn":
            if meta["serializer"] == "skops":
                return _load_skops(directory / str(meta["file"]), meta.get("trusted", []))
            with (directory / str(meta["file"])).open("rb") as stream:
                if meta.get("serializer") == "cloudpickle":
                    import cloudpickle

                    return cloudpickle.load(stream)
                return pickle.load(stream)
        if kind == "xgboost":
            return XGBoostFlavor().load(directory, {"file": meta["file"], "class": meta["class"]})
        if importlib.util.find_spec("mlflow") is None:
            raise Invalid(
                f"this MLflow model's flavor ({meta['flavors']}) is loaded by the mlflow "
                "package, which is not installed: pip install mlflow",
                field="flavor",
            )
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(directory))

    def requirements(self, model: Any) -> list[str]:
        return []


#: modules whose types a skops file may hold without being named as trusted
_SKOPS_SAFE = ("sklearn.", "numpy.", "scipy.")


def _load_skops(path: Path, trusted: list[str]) -> Any:
    """A skops file, trusting scikit-learn's, NumPy's and SciPy's types and those the
    MLmodel names; any other type in it is refused, naming it."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(file=path)
    refused = [t for t in untrusted if not t.startswith(_SKOPS_SAFE) and t not in trusted]
    if refused:
        raise Invalid(
            f"the skops model holds types loopstack does not trust: {refused}; expected only "
            "scikit-learn, NumPy and SciPy types or those listed as skops_trusted_types",
            field="model",
        )
    return skops.io.load(path, trusted=untrusted)


def _mlmodel(directory: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load((directory / MLMODEL_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ArtifactCorrupted(
            f"the MLmodel file is unreadable ({exc})", field=MLMODEL_NAME
        ) from exc
    flavors = doc.get("flavors") if isinstance(doc, dict) else None
    if not isinstance(flavors, dict) or not flavors:
        raise ArtifactCorrupted(
            "the MLmodel file names no flavors: expected a 'flavors' mapping",
            field=MLMODEL_NAME,
        )
    return flavors


def _metadata(flavors: dict[str, Any]) -> dict[str, Any]:
    names = sorted(flavors)
    sk = flavors.get("sklearn")
    if isinstance(sk, dict) and sk.get("pickled_model"):
        fmt = str(sk.get("serialization_format") or "cloudpickle")
        if fmt not in ("cloudpickle", "pickle", "skops"):
            raise Invalid(
                f"the sklearn model is serialised as {fmt!r}; loopstack reads skops, "
                "cloudpickle and pickle",
                field="flavor",
            )
        trusted = sk.get("skops_trusted_types") or []
        return {
            "kind": "sklearn",
            "file": str(sk["pickled_model"]),
            "serializer": fmt,
            "trusted": [str(t) for t in trusted] if isinstance(trusted, list) else [],
        }
    xgb = flavors.get("xgboost")
    if isinstance(xgb, dict) and xgb.get("data"):
        cls = str(xgb.get("model_class") or "xgboost.core.Booster").rsplit(".", 1)[-1]
        return {"kind": "xgboost", "file": str(xgb["data"]), "class": cls, "flavors": names}
    return {"kind": "pyfunc", "flavors": names}


def load_mlflow_package(directory: Path, expected_files: Mapping[str, str] | None) -> Any:
    """A ``LoadedModel`` of the MLflow-format package in ``directory``, digests checked first."""
    from ._loaded import LoadedModel

    if not expected_files:
        raise ArtifactCorrupted(
            f"{directory} is an MLflow-format model with no recorded file digests: load it "
            "through a registered version (models:/<name>@<alias>) so its files are checked",
            field="files",
        )
    verify_files(directory, expected_files)
    meta = _metadata(_mlmodel(directory))
    package = ModelPackage(
        flavor=f"mlflow.{meta['kind']}",
        signature=None,
        requirements=[],
        files=dict(expected_files),
        has_proba=False,
        onnx_max_abs_diff=None,
        metadata=meta,
    )
    flavor = MlflowFlavor()
    try:
        model = flavor.load(directory, meta)
    except (Invalid, ArtifactCorrupted):
        raise
    except Exception as exc:  # frameworks raise anything when their format changed
        raise Invalid(
            f"the MLflow {meta['kind']} model could not be loaded with the installed packages "
            f"({type(exc).__name__}: {exc})",
            field="model",
        ) from exc
    return LoadedModel(package, flavor, model)
