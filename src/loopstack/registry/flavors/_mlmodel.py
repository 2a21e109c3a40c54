"""The ``MLmodel`` file and environment files that let the MLflow client load a package.

A loopstack package carries, besides ``loopstack-model.json``, what MLflow's
loaders read: ``MLmodel`` (the ``python_function`` entry with its
``loader_module``, the native flavor's entry when MLflow has one, the
signature), ``requirements.txt``, ``python_env.yaml`` and ``conda.yaml``. They
are ordinary package files, so the manifest records their sha256 like any
other. Where MLflow has no loader that predicts as loopstack does (TorchScript,
state dicts, pickled objects, ONNX, LightGBM classifiers), ``python_function``
names :mod:`loopstack.registry.flavors.mlflow_pyfunc`, which loads the package
with loopstack wherever loopstack is installed.

Nothing is stamped with the time or a random id, so the same model packages to
the same bytes. No YAML library is needed: scalars are written as JSON, which
YAML reads as the same values.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from ._flavor import Flavor
from ._signature import Signature

__all__ = ["MLMODEL_FILES", "PYFUNC_LOADER", "write_mlflow_files"]

#: The files written here, all recorded in the manifest.
MLMODEL_FILES = ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt")
#: MLflow's ``loader_module`` for packages its own flavors cannot load.
PYFUNC_LOADER = "loopstack.registry.flavors.mlflow_pyfunc"

# numpy/pandas dtype names in a loopstack signature -> MLflow's column types.
_COLUMN_TYPES = {
    "float64": "double",
    "float32": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
    "str": "string",
    "string": "string",
}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _mlflow_signature(signature: Signature | None) -> dict[str, Any] | None:
    """MLflow's ``{inputs, outputs}`` (JSON strings), or ``None`` if a dtype has no MLflow type."""
    if signature is None:
        return None
    inputs: list[dict[str, Any]] = []
    if signature.is_tabular:
        for column in signature.columns:
            kind = _COLUMN_TYPES.get(column.dtype)
            if kind is None:
                return None  # no signature beats one that refuses the model's own input
            inputs.append({"type": kind, "name": column.name, "required": True})
    else:
        inputs.append(_tensor(signature.inputs.to_dict()))  # type: ignore[union-attr]
    outputs = None if signature.output is None else [_tensor(signature.output.to_dict())]
    return {
        "inputs": json.dumps(inputs),
        "outputs": None if outputs is None else json.dumps(outputs),
        "params": None,
    }


def _tensor(spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tensor", "tensor-spec": {"dtype": spec["dtype"], "shape": spec["shape"]}}


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """Block-style YAML lines for nested dicts and lists of JSON scalars."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}")
    else:
        for item in value:
            if isinstance(item, dict) and item:
                first, *rest = _yaml(item, indent + 2)
                lines.append(f"{pad}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {json.dumps(item)}")
    return lines


def _write_yaml(path: Path, value: dict[str, Any]) -> None:
    path.write_text("\n".join(_yaml(value)) + "\n", encoding="utf-8")


def _pip_requirements(requirements: list[str], native: bool) -> list[str]:
    pins = list(requirements)
    if not native:
        loopstack = _version("loopstack")
        pins.append(f"loopstack=={loopstack}" if loopstack else "loopstack")
    return sorted(set(pins))


def write_mlflow_files(
    directory: Path,
    flavor: Flavor,
    metadata: dict[str, Any],
    signature: Signature | None,
    requirements: list[str],
) -> None:
    """Write ``MLmodel``, ``requirements.txt``, ``python_env.yaml`` and ``conda.yaml``."""
    python = platform.python_version()
    entry = flavor.mlflow_entry(metadata)
    native = entry is not None and entry.pyfunc is not None
    pyfunc: dict[str, Any] = {
        "loader_module": PYFUNC_LOADER,
        "python_version": python,
        "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
        "predict_fn": "predict",
    }
    if entry is not None and entry.pyfunc is not None:
        pyfunc.update(entry.pyfunc)
    flavors: dict[str, Any] = {"python_function": pyfunc}
    if entry is not None:
        flavors[entry.name] = entry.config
    mlmodel: dict[str, Any] = {"flavors": flavors}
    mlflow_signature = _mlflow_signature(signature)
    if mlflow_signature is not None:
        mlmodel["signature"] = mlflow_signature
    _write_yaml(directory / "MLmodel", mlmodel)

    pins = _pip_requirements(requirements, native)
    (directory / "requirements.txt").write_text("".join(f"{p}\n" for p in pins), "utf-8")
    pip, setuptools = _version("pip"), _version("setuptools")
    _write_yaml(
        directory / "python_env.yaml",
        {
            "python": python,
            "build_dependencies": [
                f"pip=={pip}" if pip else "pip",
                f"setuptools=={setuptools}" if setuptools else "setuptools",
                "wheel",
            ],
            "dependencies": ["-r requirements.txt"],
        },
    )
    _write_yaml(
        directory / "conda.yaml",
        {
            "name": "mlflow-env",
            "channels": ["conda-forge"],
            "dependencies": [f"python={python}", f"pip<={pip}" if pip else "pip", {"pip": pins}],
        },
    )
