"""How an online row's values are stored: one versioned encoding that holds only data.

The caller encodes a row once, so every backend stores the same bytes. Three
encodings are read; the first byte tells them apart (``decode_row``, ``decode_values``):

* format 2, written by ``encode_rows`` and ``encode_arrow_rows``: the msgpack array
  ``[2, layout, value, ...]``, where ``layout`` is the view's feature names joined by
  ``\\x1f`` and the values follow in layout order (a msgpack array starts with a byte in
  0x90-0x9f, 0xdc or 0xdd). msgpack builds only None, bools, ints, floats, strings,
  bytes, lists and string-keyed dicts: an extension type is refused (``ext_hook``) and
  the timestamp extension decodes to an int, so a crafted row cannot make the reader
  build any other object. Decoding is one ``msgpack.unpackb`` (about 1.5 us for 20
  floats, as fast as the ``marshal.loads`` of format 1); a reader maps a layout to its
  own features once per layout, not per row.
* format 1, the rows loopstack wrote before: ``marshal`` (version 4) of the tuple
  ``(1, layout, value, ...)``. Still read, never with ``marshal.loads``: ``_legacy``
  parses them with a safe reader that accepts only the types such a row holds. They
  are not migrated on read; the next materialization of an entity rewrites its row in
  format 2.
* JSON (``encode_values``): a compact JSON object ``{"feature": value}``; text, or
  bytes starting with ``{``. Written when a value has no msgpack form (a date, a
  decimal): ``json.loads`` too builds only data.

A binary row of any other version is refused (``Invalid`` naming the version), so a
row written by a newer loopstack is never misread. Values are the same
JSON-compatible scalars in every encoding (timestamps as microseconds since the
epoch, bytes as base64 text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from itertools import repeat
from typing import Any, NoReturn

import msgpack

from loopstack.errors import Invalid
from loopstack.features.online._legacy import LegacyRowError, read_marshal_row

__all__ = [
    "READ_FORMATS",
    "ROW_FORMAT",
    "decode_json",
    "decode_row",
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
ROW_FORMAT = 2
#: every binary row format this version reads (1: marshal, read by ``_legacy``)
READ_FORMATS = (1, 2)

_SEP = "\x1f"  # the ASCII unit separator: never in a sane join key
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_unpackb = msgpack.unpackb
_MSGPACK_ARRAY = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])
_MARSHAL_TUPLE = frozenset([0x28, 0x29, 0xA8, 0xA9])  # "(" or ")", maybe with FLAG_REF


def _refuse_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"a msgpack extension value (type {code}), which an online row never holds")


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
    """The feature names of a stored layout (``row_layout`` undone), cached."""
    return tuple(layout.split(_SEP)) if layout else ()


def encode_rows(names: Sequence[str], columns: Sequence[Sequence[Any]], n_rows: int) -> list[bytes]:
    """``n_rows`` binary rows (format 2) from one value list per feature, in ``names`` order.

    Raises ValueError when a value has no msgpack form (use ``encode_values`` then).
    """
    layout = row_layout(names)
    pack = msgpack.Packer(use_bin_type=True).pack  # one per call: a Packer is not thread-safe
    try:
        if not columns:
            return [pack((ROW_FORMAT, layout))] * n_rows
        return list(map(pack, zip(repeat(ROW_FORMAT), repeat(layout), *columns)))
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"a feature value has no binary row form: {exc}") from exc


def _fixed_width(array: Any) -> tuple[bytes, Any] | None:
    """(msgpack type byte, big-endian values) of a fixed-width Arrow column, or None.

    Floats are written as float 64 (``0xcb``), signed integers as int 64 (``0xd3``),
    unsigned ones as uint 64 (``0xcf``) and booleans as the one byte ``0xc3``/``0xc2``;
    other types take the general path.
    """
    import numpy as np
    import pyarrow as pa

    t = array.type
    if pa.types.is_floating(t):
        return b"\xcb", array.to_numpy(zero_copy_only=False).astype(">f8", copy=False)
    if pa.types.is_signed_integer(t):
        return b"\xd3", array.fill_null(0).to_numpy().astype(">i8")
    if pa.types.is_unsigned_integer(t):
        return b"\xcf", array.fill_null(0).to_numpy().astype(">u8")
    if pa.types.is_boolean(t):
        flags = array.fill_null(False).to_numpy(zero_copy_only=False)
        return b"", np.where(flags, 0xC3, 0xC2).astype(np.uint8)
    return None


def encode_arrow_rows(names: Sequence[str], arrays: Sequence[Any], n_rows: int) -> list[bytes]:
    """``encode_rows`` over Arrow columns: the same rows, written by numpy when every column
    is a number or a boolean (one row per slice of one buffer, no per-value Python work).

    Rows holding a null, and views with other types, are encoded row by row.
    """
    import numpy as np

    maybe = [_fixed_width(a) for a in arrays] if arrays and n_rows else []
    fixed = [f for f in maybe if f is not None]
    if not fixed or len(fixed) < len(arrays):
        return encode_rows(names, [a.to_pylist() for a in arrays], n_rows)
    packer = msgpack.Packer(use_bin_type=True)
    head = packer.pack_array_header(2 + len(arrays)) + packer.pack(ROW_FORMAT)
    head += packer.pack(row_layout(names))
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
    """True for a binary row (``encode_rows``, any format), False for JSON (``encode_values``)."""
    return not isinstance(blob, str) and blob[:1] != b"{"


def _refused(blob: bytes, why: str) -> Invalid:
    return Invalid(
        f"an online row that is not a loopstack row of format "
        f"{' or '.join(map(str, READ_FORMATS))} ({why}; it starts {bytes(blob[:8])!r})",
        field="online_row",
    )


def decode_row(blob: bytes) -> list[Any]:
    """``[format, layout, *values]`` of a binary row of any format this version reads.

    Raises Invalid for a row of an unknown format version (naming it) or bytes that are
    not a row; never builds anything but data.
    """
    first = blob[0] if blob else -1
    if first in _MSGPACK_ARRAY:
        try:
            row: list[Any] = _unpackb(blob, ext_hook=_refuse_ext, timestamp=2)
        except Exception as exc:  # noqa: BLE001 - msgpack raises several kinds on bad bytes
            raise _refused(blob, f"undecodable: {exc}") from exc
        if row and row[0] != ROW_FORMAT:
            raise Invalid(
                f"an online row in format version {row[0]!r}; this loopstack reads versions "
                f"{', '.join(map(str, READ_FORMATS))} (was it written by a newer loopstack?)",
                field="online_row",
            )
        if len(row) < 2 or type(row[1]) is not str:
            raise _refused(blob, "not [format, layout, *values]")
        return row
    if first in _MARSHAL_TUPLE:
        try:
            row = read_marshal_row(blob)
        except LegacyRowError as exc:
            raise _refused(blob, str(exc)) from exc
        if row[0] != 1:
            raise Invalid(
                f"an online row in format version {row[0]!r} written by marshal; only "
                f"version 1 was ever written that way",
                field="online_row",
            )
        return row
    raise _refused(blob, "an unknown encoding")


def decode_json(blob: str | bytes) -> dict[str, Any]:
    """The ``{feature: value}`` of a JSON row; Invalid when it is not a JSON object."""
    try:
        obj = json.loads(blob)
    except ValueError as exc:
        raise Invalid(f"an online JSON row that does not parse: {exc}", field="online_row") from exc
    if type(obj) is not dict:
        raise Invalid(
            f"an online JSON row must be an object; got {type(obj).__name__}", field="online_row"
        )
    return obj


def decode_values(blob: str | bytes) -> dict[str, Any]:
    """The ``{feature: value}`` of a stored row, in any encoding."""
    if isinstance(blob, str) or blob[:1] == b"{":
        return decode_json(blob)
    row = decode_row(blob)
    return dict(zip(layout_names(row[1]), row[2:], strict=False))
