"""Typed artifacts: how a step's outputs are encoded, stored as blobs and read back.

Kinds: ``dataframe`` (pandas, Parquet), ``arrow`` (pyarrow Table, Parquet), ``ndarray``
(numpy, ``.npy``), ``json`` (plain values, canonical JSON), ``metrics`` (``dict[str,
float]``, canonical JSON) and ``pickle`` (models and any other object; pickle, so only
load artifacts from stores you trust). Encoding is deterministic: the same value gives
the same bytes, so an artifact's sha256 is a digest of its content.
"""

from __future__ import annotations

import inspect
import io
import json
import pickle
import typing
from dataclasses import dataclass
from typing import Any

from loopstack.errors import Invalid
from loopstack.pipelines._digest import canonical_json

if typing.TYPE_CHECKING:
    from loopstack.store.artifacts import BlobStore

__all__ = [
    "KINDS",
    "ArtifactRef",
    "decode",
    "encode",
    "kind_for",
    "kind_of_annotation",
    "load_artifact",
    "store_artifact",
]

KINDS = ("arrow", "dataframe", "json", "metrics", "ndarray", "pickle")
_JSON_TYPES = (int, float, str, bool, type(None), list, dict)


@dataclass(frozen=True)
class ArtifactRef:
    """A stored output: its name, kind, and the sha256 and size of its bytes."""

    name: str
    kind: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """The reference as a JSON object."""
        return {"name": self.name, "kind": self.kind, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        """A reference from ``to_dict``'s output."""
        return cls(str(data["name"]), str(data["kind"]), str(data["sha256"]), int(data["size"]))


def _class_is(tp: Any, module: str, name: str) -> bool:
    return isinstance(tp, type) and tp.__name__ == name and (tp.__module__.split(".")[0] == module)


def kind_of_annotation(tp: Any) -> str | None:
    """The kind a return annotation declares (``None``: unannotated or not a known kind)."""
    if tp is None or tp is typing.Any or tp is inspect.Parameter.empty:
        return None
    if tp is type(None):
        return "json"
    if _class_is(tp, "pandas", "DataFrame"):
        return "dataframe"
    if _class_is(tp, "pyarrow", "Table"):
        return "arrow"
    if _class_is(tp, "numpy", "ndarray"):
        return "ndarray"
    origin = typing.get_origin(tp)
    if origin is dict and typing.get_args(tp) == (str, float):
        return "metrics"
    if tp in _JSON_TYPES or origin in (list, dict):
        return "json"
    if origin is not None and _class_is(origin, "numpy", "ndarray"):
        return "ndarray"
    return None


def _is_json(value: Any) -> bool:
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, (int, str, bool, type(None))):
        return True
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _kind_of_value(value: Any) -> str:
    tp = type(value)
    if _class_is(tp, "pandas", "DataFrame"):
        return "dataframe"
    if _class_is(tp, "pyarrow", "Table"):
        return "arrow"
    if _class_is(tp, "numpy", "ndarray"):
        return "ndarray"
    if _is_json(value):
        return "json"
    return "pickle"


def kind_for(value: Any, declared: Any = None, *, what: str = "the output") -> str:
    """The kind to store ``value`` as; Invalid if it does not match the ``declared``
    annotation's kind."""
    want = kind_of_annotation(declared)
    got = _kind_of_value(value)
    if want is None:
        return got
    if want == "metrics":
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in value.items()
        )
        if ok:
            return "metrics"
    elif want == got:
        return want
    raise Invalid(
        f"{what} is declared as {getattr(declared, '__name__', declared)} ({want}); "
        f"got {type(value).__name__} ({got}) instead"
    )


def encode(value: Any, kind: str) -> bytes:
    """``value``'s bytes as ``kind`` (deterministic)."""
    if kind == "json":
        return canonical_json(value, what="a json artifact").encode()
    if kind == "metrics":
        return canonical_json({k: float(v) for k, v in value.items()}).encode()
    if kind in ("dataframe", "arrow"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(value) if kind == "dataframe" else value
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()
    if kind == "ndarray":
        import numpy as np

        sink = io.BytesIO()
        try:
            np.save(sink, value, allow_pickle=False)
        except ValueError as exc:
            raise Invalid(
                f"an ndarray artifact must hold plain numbers or strings; got dtype "
                f"{value.dtype} instead (declare the output as object to pickle it)"
            ) from exc
        return sink.getvalue()
    if kind == "pickle":
        try:
            return pickle.dumps(value, protocol=5)
        except Exception as exc:
            raise Invalid(
                f"an output of type {type(value).__name__} cannot be pickled: {exc}"
            ) from exc
    raise Invalid(f"an artifact kind must be one of {', '.join(KINDS)}; got {kind!r} instead")


def decode(data: bytes, kind: str) -> Any:
    """The value ``encode`` made ``data`` from."""
    if kind in ("json", "metrics"):
        return json.loads(data)
    if kind in ("dataframe", "arrow"):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        return table.to_pandas() if kind == "dataframe" else table
    if kind == "ndarray":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "pickle":
        return pickle.loads(data)  # noqa: S301 - documented: pickle artifacts are trusted
    raise Invalid(f"an artifact kind must be one of {', '.join(KINDS)}; got {kind!r} instead")


def store_artifact(blobs: BlobStore, name: str, value: Any, declared: Any = None) -> ArtifactRef:
    """Encode ``value`` and put it in ``blobs``; its reference."""
    kind = kind_for(value, declared, what=f"the output {name!r}")
    sha256, size = blobs.put_bytes(encode(value, kind))
    return ArtifactRef(name, kind, sha256, size)


def load_artifact(blobs: BlobStore, ref: ArtifactRef) -> Any:
    """The value behind ``ref`` (its bytes checked against the sha256)."""
    return decode(blobs.read_bytes(ref.sha256), ref.kind)
