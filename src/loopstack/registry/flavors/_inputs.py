"""Turning what a caller hands to ``predict`` into a DataFrame or an array.

Accepted: a pandas DataFrame, a numpy array (or anything ``np.asarray`` takes,
such as a list of lists), a dict of columns, a list of row dicts, and a torch
tensor (converted without importing torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from loopstack.errors import Invalid

__all__ = ["as_frame_or_array", "dtype_kind", "dtype_name"]


def as_frame_or_array(data: Any) -> pd.DataFrame | np.ndarray:
    """A DataFrame for tabular input (frames, dicts, lists of dicts), else an array."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame({str(k): np.asarray(v) for k, v in data.items()})
        except ValueError as exc:
            raise Invalid(
                f"a dict input must map column names to equally long lists or arrays; {exc}"
            ) from exc
    if isinstance(data, list) and data and all(isinstance(row, Mapping) for row in data):
        return pd.DataFrame.from_records(data)
    if type(data).__module__.startswith("torch") and hasattr(data, "detach"):
        return np.asarray(data.detach().cpu().numpy())
    if isinstance(data, np.ndarray):
        return data
    try:
        return np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            "model input must be a DataFrame, a numpy array, a dict of columns or a list of "
            f"row dicts; got {type(data).__name__}"
        ) from exc


def dtype_name(dtype: Any) -> str:
    """The dtype's name as recorded in a signature (``float64``, ``str``, ``category``...)."""
    return str(dtype)


def dtype_kind(dtype: Any, values: Any = None) -> str:
    """One of ``float int uint bool string category datetime object``.

    For an ``object`` dtype, ``values`` (a Series or array) is inspected so
    that an object column holding only numbers or only strings is classed by
    its contents.
    """
    if isinstance(dtype, str):
        dtype = _parse_dtype(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_unsigned_integer_dtype(dtype):
        return "uint"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "US"):
        return "string"
    if values is not None and len(values):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        return {
            "string": "string",
            "integer": "int",
            "floating": "float",
            "mixed-integer-float": "float",
            "boolean": "bool",
        }.get(inferred, "object")
    return "object"


def _parse_dtype(name: str) -> Any:
    if name == "category":
        return pd.CategoricalDtype()
    if name in ("str", "string"):
        return pd.StringDtype()
    try:
        return pd.api.types.pandas_dtype(name)
    except TypeError:
        return np.dtype(object)
