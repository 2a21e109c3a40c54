"""The online store interface: the newest row per (feature view, entity key).

A backend keeps, for each feature view, one row per entity key: the event timestamp
of the newest event seen for that entity and its feature values, encoded once by the
caller so every backend stores the same bytes. Writes apply a whole materialization
atomically, and never let an older event replace a newer one (late data is dropped per
entity, not per batch).

Two value encodings are read (``decode_values`` tells them apart by the first byte):

* JSON (``encode_values``): a compact JSON object ``{"feature": value}``; text.
* binary format 1 (``encode_rows``): ``marshal`` (format version 4) of the tuple
  ``(1, layout, value, ...)``, where ``layout`` is the view's feature names joined by
  ``\x1f`` and the values follow in layout order. A marshalled tuple never starts with
  ``{``, so rows written before the binary encoding keep decoding as JSON. Decoding is
  one ``marshal.loads`` (about 1 us for 20 floats against about 11 us for JSON); a
  reader maps a layout to its own features once per layout, not per row.

Values are the same JSON-compatible scalars in both encodings (timestamps as
microseconds since the epoch, bytes as base64 text). ``marshal`` is not hardened against
crafted bytes: the online store is trusted like the metadata database (it never runs
code from a row; a corrupt row fails to decode).
"""

from __future__ import annotations

import abc
import json
import marshal
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from typing import Any

__all__ = [
    "ROW_FORMAT",
    "OnlineBatch",
    "OnlineStore",
    "ViewStats",
    "decode_values",
    "encode_arrow_rows",
    "encode_key",
    "encode_rows",
    "encode_values",
    "is_binary_row",
    "layout_names",
    "row_layout",
]

#: the first item of a binary row (``encode_rows``); bump it to change the encoding
ROW_FORMAT = 1
_MARSHAL_VERSION = 4  # fixed, so every Python 3 that reads the store decodes the rows

_SEP = "\x1f"  # the ASCII unit separator: never in a sane join key
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


def encode_key(key: Sequence[Any]) -> str:
    """The stored form of an entity key tuple (the join key values, in join-key order).

    >>> encode_key((1001,))
    '1001'
    """
    if len(key) == 1:
        return str(key[0])
    return _SEP.join(map(str, key))


def encode_values(values: dict[str, Any]) -> str:
    """Feature values (JSON-compatible scalars) as one compact JSON object."""
    return _dumps(values)


def row_layout(names: Sequence[str]) -> str:
    """The layout stored in each binary row: the feature names, in value order."""
    return _SEP.join(names)


@lru_cache(maxsize=1024)
def layout_names(layout: str) -> tuple[str, ...]:
    return tuple(layout.split(_SEP)) if layout else ()


def encode_rows(names: Sequence[str], columns: Sequence[Sequence[Any]], n_rows: int) -> list[bytes]:
    """``n_rows`` binary rows (format 1) from one value list per feature, in ``names`` order.

    Raises ValueError when a value cannot be marshalled (use ``encode_values`` then).
    """
    layout = row_layout(names)
    if not columns:
        return [marshal.dumps((ROW_FORMAT, layout), _MARSHAL_VERSION)] * n_rows
    rows = zip(repeat(ROW_FORMAT), repeat(layout), *columns)
    return list(map(marshal.dumps, rows, repeat(_MARSHAL_VERSION)))


def _fixed_width(array: Any) -> tuple[bytes, Any] | None:
    """(marshal type code, little-endian values) of a fixed-width Arrow column, or None.

    Floats are marshalled as 8-byte doubles (``g``), integers inside int32 as ``i`` and
    booleans as ``T``/``F``; other types (and wider integers) take the general path.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if pa.types.is_floating(t):
        return b"g", array.to_numpy(zero_copy_only=False).astype("<f8", copy=False)
    if pa.types.is_integer(t):
        if len(array) - array.null_count:
            lo, hi = pc.min_max(array).values()
            if lo.as_py() < -(2**31) or hi.as_py() >= 2**31:
                return None
        return b"i", array.fill_null(0).to_numpy().astype("<i4")
    if pa.types.is_boolean(t):
        flags = array.fill_null(False).to_numpy(zero_copy_only=False)
        return b"", np.where(flags, ord("T"), ord("F")).astype(np.uint8)
    return None


def encode_arrow_rows(names: Sequence[str], arrays: Sequence[Any], n_rows: int) -> list[bytes]:
    """``encode_rows`` over Arrow columns: the same rows, written by numpy when every column
    is a number or a boolean (one row per slice of one buffer, no per-value Python work).

    Rows holding a null, and views with other types, are marshalled row by row.
    """
    import numpy as np

    maybe = [_fixed_width(a) for a in arrays] if 0 < len(arrays) <= 250 and n_rows else []
    fixed = [f for f in maybe if f is not None]
    if not fixed or len(fixed) < len(arrays):
        return encode_rows(names, [a.to_pylist() for a in arrays], n_rows)
    layout = marshal.dumps(row_layout(names), _MARSHAL_VERSION)
    layout = bytes([layout[0] & 0x7F]) + layout[1:]  # no back-reference flag
    head = b")" + bytes([2 + len(arrays)]) + b"i" + ROW_FORMAT.to_bytes(4, "little") + layout
    widths = [len(code) + (values.dtype.itemsize if code else 1) for code, values in fixed]
    width = len(head) + sum(widths)
    out = np.empty((n_rows, width), np.uint8)
    out[:, : len(head)] = np.frombuffer(head, np.uint8)
    at = len(head)
    for (code, values), w in zip(fixed, widths, strict=True):
        if code:
            out[:, at] = code[0]
        out[:, at + len(code) : at + w] = (
            np.ascontiguousarray(values).view(np.uint8).reshape(n_rows, w - len(code))
        )
        at += w
    buf = out.tobytes()
    rows = [buf[i : i + width] for i in range(0, n_rows * width, width)]
    nulls = [a for a in arrays if a.null_count]
    if nulls:  # rows holding a null: the general path, row by row
        import pyarrow.compute as pc

        mask = nulls[0].is_null()
        for a in nulls[1:]:
            mask = pc.or_(mask, a.is_null())
        where = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
        if len(where):
            import pyarrow as pa

            idx = pa.array(where)
            redo = encode_rows(names, [a.take(idx).to_pylist() for a in arrays], len(where))
            for i, blob in zip(where.tolist(), redo, strict=True):
                rows[i] = blob
    return rows


def is_binary_row(blob: str | bytes) -> bool:
    """True for a binary row (``encode_rows``), False for JSON (``encode_values``)."""
    return not isinstance(blob, str) and blob[:1] != b"{"


def decode_values(blob: str | bytes) -> dict[str, Any]:
    """The ``{feature: value}`` of a stored row, in either encoding."""
    if isinstance(blob, str) or blob[:1] == b"{":
        result: dict[str, Any] = _loads(blob)
        return result
    row = marshal.loads(blob)
    if type(row) is not tuple or len(row) < 2 or row[0] != ROW_FORMAT:
        raise ValueError(f"an online row in an unknown encoding (starts {bytes(blob[:8])!r})")
    return dict(zip(layout_names(row[1]), row[2:], strict=False))


@dataclass(frozen=True)
class OnlineBatch:
    """Rows for one view: parallel lists of encoded keys, event times (us) and values."""

    keys: list[str]
    event_ts: list[int]
    values: Sequence[str | bytes]  # encode_values (JSON) or encode_rows (binary)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class ViewStats:
    rows: int
    newest_event_ts: int | None  # microseconds since the epoch, UTC
    watermark: int | None  # the end (us) of the last materialization written


class OnlineStore(abc.ABC):
    """One online store; backends are chosen by URL scheme (see ``open_online_store``)."""

    #: URL scheme(s) this backend answers to
    schemes: tuple[str, ...] = ()

    def __init__(self, url: str) -> None:
        self.url = url

    @abc.abstractmethod
    def write(
        self, view: str, batches: Iterable[OnlineBatch], *, watermark: int | None = None
    ) -> int:
        """Apply every batch, and the watermark, in one atomic step; return the rows kept.

        If iterating ``batches`` raises, nothing is applied. A row whose event time is
        older than the stored row's for the same key is dropped; ties overwrite.
        """

    @abc.abstractmethod
    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, str | bytes] | None]:
        """For each encoded key in order: ``(event_ts_us, encoded values)``, or None."""

    @abc.abstractmethod
    def scan(self, view: str) -> Iterator[tuple[str, int, str | bytes]]:
        """Every stored ``(key, event_ts_us, encoded values)`` of a view, in no order."""

    @abc.abstractmethod
    def stats(self, view: str) -> ViewStats:
        """Row count, newest event time and watermark of a view (zeros when unknown)."""

    @abc.abstractmethod
    def delete_view(self, view: str) -> None:
        """Drop every row and the watermark of a view (no error when absent)."""

    @abc.abstractmethod
    def views(self) -> list[str]:
        """The names of the views that have rows or a watermark, sorted."""

    def watermark(self, view: str) -> int | None:
        return self.stats(view).watermark

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections (the store may not be used afterwards)."""

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
