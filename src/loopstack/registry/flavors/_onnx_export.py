"""The ONNX fast path for scikit-learn: convert with skl2onnx, measure parity, save ``model.onnx``.

Input types come from the signature: one 2-D tensor when every column is
numeric (double for float64, so scaling matches the native model), else one
input per column. scikit-learn's trees compare in float32, so a cast to
float32 is put in front of every tree step; without it an input that lies
between a float32 threshold and its float64 rounding would take the other
branch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from loopstack.errors import Invalid

from ._inputs import dtype_kind
from ._onnx import OnnxPredictor, open_onnx_session
from ._requirements import pin
from ._signature import Signature, TensorSpec

__all__ = ["ONNX_FILE", "export_sklearn_onnx"]

ONNX_FILE = "model.onnx"

# Modules whose estimators cast their input to float32 before comparing thresholds.
_FLOAT32_MODULES = (
    "sklearn.tree",
    "sklearn.ensemble._forest",
    "sklearn.ensemble._gb",
    "sklearn.ensemble._hist_gradient_boosting",
    "sklearn.ensemble._iforest",
)


def _initial_types(signature: Signature) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    def tensor_type(kind: str, dtype: str) -> Any:
        if kind == "float":
            return FloatTensorType if dtype == "float32" else DoubleTensorType
        if kind in ("int", "uint", "bool"):
            return Int64TensorType
        return StringTensorType

    if isinstance(signature.inputs, TensorSpec):
        spec = signature.inputs
        kind = dtype_kind(spec.dtype)
        shape = [None, *spec.shape[1:]]
        return [("input", tensor_type(kind, spec.dtype)(shape))]
    kinds = [dtype_kind(c.dtype) for c in signature.inputs]
    if all(k in ("float", "int", "uint", "bool") for k in kinds):
        all_float32 = all(c.dtype == "float32" for c in signature.inputs)
        cls = FloatTensorType if all_float32 else DoubleTensorType
        return [("input", cls([None, len(kinds)]))]
    return [
        (c.name, tensor_type(k, c.dtype)([None, 1]))
        for c, k in zip(signature.inputs, kinds, strict=True)
    ]


def _with_float32_casts(model: Any) -> Any:
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    steps = list(model.steps) if isinstance(model, Pipeline) else [("model", model)]
    prepared: list[tuple[str, Any]] = []
    for name, step in steps:
        if type(step).__module__.startswith(_FLOAT32_MODULES):
            cast = CastTransformer(dtype=np.float32).fit(np.zeros((1, 1)))
            prepared.append((f"{name}__float32", cast))
        prepared.append((name, step))
    if len(prepared) == len(steps):
        return model
    return Pipeline(prepared)


def _no_zipmap(model: Any) -> dict[int, dict[str, Any]]:
    from sklearn.base import BaseEstimator, is_classifier
    from sklearn.pipeline import Pipeline

    parts = [model, *model.get_params(deep=True).values()]
    return {
        id(part): {"zipmap": False}
        for part in parts
        if isinstance(part, BaseEstimator)
        and not isinstance(part, Pipeline)
        and is_classifier(part)
    }


def _max_abs_diff(native: np.ndarray, onnx: np.ndarray) -> float:
    native = np.asarray(native)
    onnx = np.asarray(onnx)
    if native.size != onnx.size:
        raise Invalid(
            f"the ONNX conversion gives {onnx.size} values where the native model gives "
            f"{native.size}; package it with onnx=False",
            field="onnx",
        )
    native, onnx = native.reshape(-1), onnx.reshape(-1)
    if native.dtype.kind in "fiub" and onnx.dtype.kind in "fiub":
        return float(
            np.max(np.abs(native.astype(np.float64) - onnx.astype(np.float64)), initial=0.0)
        )
    # Labels that are not numbers: 1.0 if any differs.
    return 0.0 if np.array_equal(native.astype(str), onnx.astype(str)) else 1.0


def export_sklearn_onnx(
    model: Any,
    signature: Signature,
    sample_input: Any,
    directory: Path,
    *,
    native_predict: Callable[[Any], np.ndarray],
    native_proba: Callable[[Any], np.ndarray] | None,
) -> dict[str, Any]:
    """Write ``directory/model.onnx``; return the manifest's ``onnx`` entry with the parity."""
    try:
        from skl2onnx import to_onnx
    except ImportError as exc:
        raise Invalid(
            f"onnx=True needs skl2onnx and onnxruntime (pip install 'loopstack[onnx]'); got {exc}",
            field="onnx",
        ) from exc
    try:
        proto = to_onnx(
            _with_float32_casts(model),
            initial_types=_initial_types(signature),
            options=_no_zipmap(model),
        )
    except Exception as exc:  # skl2onnx raises many types for unsupported models
        raise Invalid(
            f"skl2onnx cannot convert this {type(model).__name__} to ONNX "
            f"({type(exc).__name__}: {exc}); package it with onnx=False",
            field="onnx",
        ) from exc
    path = directory / ONNX_FILE
    path.write_bytes(proto.SerializeToString())
    output_ndim = None if signature.output is None else len(signature.output.shape)
    predictor = OnnxPredictor(open_onnx_session(path), output_ndim=output_ndim)
    if native_proba is not None and predictor.has_proba:
        compared = "predict_proba"
        diff = _max_abs_diff(native_proba(sample_input), predictor.predict_proba(sample_input))
    else:
        compared = "predict"
        diff = _max_abs_diff(native_predict(sample_input), predictor.predict(sample_input))
    return {
        "file": ONNX_FILE,
        "max_abs_diff": diff,
        "compared": compared,
        "has_proba": predictor.has_proba,
        "requirements": [pin("onnxruntime")],
        "converter": pin("skl2onnx"),
    }
