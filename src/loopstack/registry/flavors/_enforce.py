"""Checking prediction input against a model's signature before the model sees it.

Missing columns and dtypes that cannot be cast without changing meaning are
``Invalid`` errors naming the column; integers widen to floats, wider floats
narrow to the signature's float, extra columns are dropped and the
signature's column order is enforced.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopstack.errors import Invalid

from ._inputs import as_frame_or_array, dtype_kind
from ._signature import ColumnSpec, Signature, TensorSpec

__all__ = ["enforce_signature"]

# For each expected kind, the kinds of input that cast to it without changing meaning.
_CASTS_TO: dict[str, frozenset[str]] = {
    "float": frozenset({"float", "int", "uint"}),
    "int": frozenset({"int", "uint"}),
    "uint": frozenset({"uint"}),
    "bool": frozenset({"bool"}),
    "string": frozenset({"string", "object", "category"}),
    "category": frozenset({"category", "string", "object"}),
    "datetime": frozenset({"datetime"}),
}


def enforce_signature(data: Any, signature: Signature | None) -> pd.DataFrame | np.ndarray:
    """``data`` as the model expects it, or ``Invalid`` saying what differs."""
    frame_or_array = as_frame_or_array(data)
    if signature is None:
        return frame_or_array
    if isinstance(signature.inputs, TensorSpec):
        array = (
            frame_or_array.to_numpy()
            if isinstance(frame_or_array, pd.DataFrame)
            else frame_or_array
        )
        return _enforce_tensor(array, signature.inputs)
    if isinstance(frame_or_array, np.ndarray):
        frame_or_array = _array_to_frame(frame_or_array, signature.inputs)
    return _enforce_columns(frame_or_array, signature.inputs)


def _array_to_frame(array: np.ndarray, columns: tuple[ColumnSpec, ...]) -> pd.DataFrame:
    if array.ndim == 1 and len(columns) == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != len(columns):
        raise Invalid(
            f"this model expects {len(columns)} columns "
            f"({', '.join(c.name for c in columns)}); got an array of shape {array.shape}",
            field="inputs",
        )
    return pd.DataFrame(array, columns=[c.name for c in columns])


def _enforce_columns(frame: pd.DataFrame, columns: tuple[ColumnSpec, ...]) -> pd.DataFrame:
    names = [c.name for c in columns]
    present = {str(c) for c in frame.columns}
    missing = [n for n in names if n not in present]
    if missing:
        raise Invalid(
            f"input is missing column(s) {', '.join(repr(m) for m in missing)} "
            f"that this model expects; expected columns {names}, got {list(frame.columns)}",
            field="inputs",
        )
    frame = frame.rename(columns=str)[names]
    problems: list[str] = []
    converted: dict[str, Any] = {}
    for spec in columns:
        column = frame[spec.name]
        try:
            converted[spec.name] = _cast_column(column, spec)
        except _Mismatch as exc:
            problems.append(str(exc))
    if problems:
        raise Invalid(
            "input does not match the model's signature: " + "; ".join(problems), field="inputs"
        )
    return pd.DataFrame(converted, index=frame.index)


class _Mismatch(Exception):
    pass


def _cast_column(column: pd.Series, spec: ColumnSpec) -> pd.Series:
    expected = dtype_kind(spec.dtype)
    got = dtype_kind(column.dtype, column)
    if str(column.dtype) == spec.dtype:
        return column
    allowed = _CASTS_TO.get(expected)
    if allowed is not None and got not in allowed:
        raise _Mismatch(
            f"column {spec.name!r} should be {spec.dtype}, got {column.dtype} "
            f"({got} values cannot be cast to {expected} safely)"
        )
    if expected in ("string", "object"):
        return column
    try:
        return column.astype(spec.dtype)
    except (TypeError, ValueError) as exc:
        raise _Mismatch(
            f"column {spec.name!r} should be {spec.dtype}, got {column.dtype} ({exc})"
        ) from exc


def _enforce_tensor(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if array.ndim != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape[1:], array.shape[1:], strict=True)
    ):
        raise Invalid(
            f"this model expects an array of shape {_shape_text(spec.shape)}; "
            f"got shape {tuple(array.shape)}",
            field="inputs",
        )
    if str(array.dtype) == spec.dtype:
        return array
    expected = dtype_kind(spec.dtype)
    got = dtype_kind(array.dtype, array.ravel() if array.dtype == object else None)
    allowed = _CASTS_TO.get(expected)
    if allowed is not None and got not in allowed:
        raise Invalid(
            f"this model expects an array of {spec.dtype}; got {array.dtype} "
            f"({got} values cannot be cast to {expected} safely)",
            field="inputs",
        )
    if expected in ("string", "object"):
        return array
    try:
        return array.astype(spec.dtype)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"this model expects an array of {spec.dtype}; got {array.dtype} ({exc})",
            field="inputs",
        ) from exc


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("N" if d == -1 else str(d) for d in shape) + ")"
