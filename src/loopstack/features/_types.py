"""Feature value types: one canonical name per type, whatever the user wrote.

Accepted spellings: the canonical strings (``"int64"``, ``"float32"``, ``"string"``,
``"bool"``, ``"timestamp"``, ``"bytes"``, ...), Feast's type names (``Int64``,
``Float32``, ``String``, ``Bool``, ``UnixTimestamp``, ``Bytes``, also Feast's type
objects themselves), numpy dtypes and pyarrow types.
"""

from __future__ import annotations

from typing import Any

from loopstack.errors import Invalid

__all__ = ["DTYPES", "arrow_type", "compatible", "dtype_of_arrow", "normalize_dtype"]

DTYPES: tuple[str, ...] = (
    "int32",
    "int64",
    "float32",
    "float64",
    "string",
    "bool",
    "timestamp",
    "bytes",
)

_ALIASES: dict[str, str] = {
    **{d: d for d in DTYPES},
    "int": "int64",
    "integer": "int64",
    "long": "int64",
    "float": "float64",
    "double": "float64",
    "str": "string",
    "utf8": "string",
    "large_string": "string",
    "large_utf8": "string",
    "boolean": "bool",
    "binary": "bytes",
    "large_binary": "bytes",
    "datetime": "timestamp",
    "datetime64": "timestamp",
    "unixtimestamp": "timestamp",
    "object": "string",
}


def normalize_dtype(dtype: Any) -> str:
    """The canonical name of ``dtype``; Invalid naming the accepted ones otherwise.

    >>> normalize_dtype("Float32"), normalize_dtype(numpy.dtype("int64"))
    ('float32', 'int64')
    """
    if isinstance(dtype, str):
        key = dtype.strip().lower()
    elif isinstance(dtype, type) and dtype in (int, float, str, bool, bytes):
        key = {int: "int64", float: "float64", str: "string", bool: "bool", bytes: "bytes"}[dtype]
    else:
        key = _from_library(dtype)
    if key.startswith(("datetime64", "timestamp")):
        key = "timestamp"
    canonical = _ALIASES.get(key)
    if canonical is None:
        raise Invalid(
            f"a feature type must be one of {', '.join(DTYPES)} (or a numpy/pyarrow "
            f"dtype or a Feast type name such as Float32); got {dtype!r} instead",
            field="dtype",
        )
    return canonical


def _from_library(dtype: Any) -> str:
    mod = type(dtype).__module__ or ""
    if mod.startswith("pyarrow"):
        return dtype_of_arrow(dtype)
    if mod.startswith("numpy") or (
        isinstance(dtype, type) and (dtype.__module__ or "").startswith("numpy")
    ):
        import numpy as np

        np_dtype = np.dtype(dtype)
        if np_dtype.kind == "M":
            return "timestamp"
        if np_dtype.kind in ("U", "O"):
            return "string"
        if np_dtype.kind == "S":
            return "bytes"
        return str(np_dtype.name)
    if mod.startswith("pandas"):
        name = str(dtype).lower()
        return "timestamp" if name.startswith("datetime64") else name
    # Feast's types (feast.types.Float32 is an instance with a readable name)
    name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or str(dtype)
    return str(name).strip().lower()


def dtype_of_arrow(arrow: Any) -> str:
    """The canonical name of a pyarrow type ("int64", "timestamp", ...); its own name otherwise."""
    import pyarrow as pa

    t = pa.types
    if t.is_timestamp(arrow) or t.is_date(arrow):
        return "timestamp"
    if (
        t.is_string(arrow)
        or t.is_large_string(arrow)
        or getattr(t, "is_string_view", lambda _: False)(arrow)
    ):
        return "string"
    if t.is_binary(arrow) or t.is_large_binary(arrow) or t.is_fixed_size_binary(arrow):
        return "bytes"
    if t.is_boolean(arrow):
        return "bool"
    if t.is_dictionary(arrow):
        return dtype_of_arrow(arrow.value_type)
    return {"double": "float64", "float": "float32", "halffloat": "float16"}.get(
        str(arrow), str(arrow)
    )


def arrow_type(dtype: str) -> Any:
    """The pyarrow type of a canonical dtype (timestamps are UTC microseconds)."""
    import pyarrow as pa

    return {
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "string": pa.string(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "bytes": pa.binary(),
    }[normalize_dtype(dtype)]


#: the source types (``dtype_of_arrow`` names) each declared type accepts, at apply, at
#: retrieval (where the column is cast to the declared type) and at push: a numeric type
#: takes the integer and float widths that convert to it; the others only themselves
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
_FLOATS = ("float", "float16", "halffloat", "float32", "float64", "double")
_COMPATIBLE: dict[str, tuple[str, ...]] = {
    "int32": _INTS,
    "int64": _INTS,
    "float32": _FLOATS + _INTS,
    "float64": (*_FLOATS, *_INTS, "uint64"),
    "string": ("string",),
    "bool": ("bool",),
    "timestamp": ("timestamp",),
    "bytes": ("bytes",),
}


def compatible(declared: str, found: str) -> bool:
    """Whether a column of type ``found`` (a ``dtype_of_arrow`` name) can serve a feature
    declared ``declared``: ``compatible("int64", "int32")`` but not ``("int64", "string")``."""
    return found in _COMPATIBLE.get(declared, (declared,))
