"""A data-only reader for format 1 rows (``marshal`` version 4), never ``marshal.loads``.

Before format 2, loopstack stored a row as the marshal of ``(1, layout, *values)``.
``marshal.loads`` of bytes read back from a shared store would build whatever the
bytes describe (a code object, among others) and is not hardened against crafted
input, so old rows are parsed here instead, accepting only what such a row holds:
None, bools, ints, floats, strings, bytes, lists, tuples and dicts with string keys
(a struct feature), plus marshal's back-references to them. Any other type code (code
objects, sets, complex numbers, Ellipsis, StopIteration, ...) is refused.

Rows are read, not migrated: the next materialization of an entity rewrites its row
in format 2. This reader is plain Python (floats, ints and None inline: about 10 us for
20 floats against 1-2 us for format 2), so a store full of old rows reads slower until
it is materialized again.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["LegacyRowError", "read_marshal_row"]

_FLAG_REF = 0x80
_MAX_DEPTH = 32  # a row nests a list or a struct a few levels deep at most
_i32 = struct.Struct("<i").unpack_from
_f64 = struct.Struct("<d").unpack_from
_PENDING = object()  # a container whose items are still being read


class LegacyRowError(ValueError):
    """The bytes are not a format 1 row (crafted, corrupt, or another type)."""


class _Reader:
    __slots__ = ("data", "pos", "refs")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0
        self.refs: list[Any] = []

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise LegacyRowError("the row ends early")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _int32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise LegacyRowError("the row ends early")
        (n,) = _i32(self.data, self.pos)
        self.pos += 4
        return int(n)

    def _byte(self) -> int:
        return self._take(1)[0]

    def read(self, depth: int = 0) -> Any:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise LegacyRowError("the row ends early")
        byte = data[pos]
        code = byte & ~_FLAG_REF
        # the values a row holds most, inline (a float is ~0.3 us here, ~1 us below)
        if code == 0x67 and pos + 9 <= len(data):  # "g": a float 64
            (value,) = _f64(data, pos + 1)
            self.pos = pos + 9
        elif code == 0x69 and pos + 5 <= len(data):  # "i": an int 32
            (value,) = _i32(data, pos + 1)
            self.pos = pos + 5
        elif code == 0x4E:  # "N": None
            value, self.pos = None, pos + 1
        else:
            self.pos = pos + 1
            return self._other(chr(code), byte & _FLAG_REF, depth)
        if byte & _FLAG_REF:
            self.refs.append(value)
        return value

    def _other(self, code: str, flag: int, depth: int) -> Any:
        if code == "r":
            index = self._int32()
            if not 0 <= index < len(self.refs) or self.refs[index] is _PENDING:
                raise LegacyRowError(f"a back-reference to object {index}, which is not there")
            return self.refs[index]
        if code in "()[{":  # containers: registered before their items, as marshal does
            if depth >= _MAX_DEPTH:
                raise LegacyRowError(f"values nest deeper than {_MAX_DEPTH} levels")
            return self._container(code, flag, depth)
        value = self._scalar(code)
        if flag:
            self.refs.append(value)
        return value

    def _scalar(self, code: str) -> Any:
        if code == "N":
            return None
        if code == "T":
            return True
        if code == "F":
            return False
        if code == "i":
            return self._int32()
        if code == "l":
            n = self._int32()
            if abs(n) > 64:  # 64 digits of 15 bits: far past any feature value
                raise LegacyRowError(f"an integer of {abs(n)} digits")
            digits = self._take(2 * abs(n))
            value = 0
            for i in range(abs(n) - 1, -1, -1):
                value = (value << 15) | int.from_bytes(digits[2 * i : 2 * i + 2], "little")
            return -value if n < 0 else value
        if code == "g":
            (value,) = _f64(self._take(8))
            return value
        if code == "s":
            return self._take(self._int32())
        if code in "tu":
            return self._text(self._take(self._int32()), "utf-8")
        if code in "aA":
            return self._text(self._take(self._int32()), "ascii")
        if code in "zZ":
            return self._text(self._take(self._byte()), "ascii")
        raise LegacyRowError(f"a value of marshal type {code!r}, which an online row never holds")

    @staticmethod
    def _text(raw: bytes, encoding: str) -> str:
        try:
            return raw.decode(encoding, "surrogatepass" if encoding == "utf-8" else "strict")
        except UnicodeDecodeError as exc:
            raise LegacyRowError(f"text that is not {encoding}: {exc.reason}") from None

    def _container(self, code: str, flag: int, depth: int) -> Any:
        at = len(self.refs)
        if flag:
            self.refs.append(_PENDING)
        out: Any
        if code == "{":
            out = {}
            while self.data[self.pos : self.pos + 1] != b"0":
                key = self.read(depth + 1)
                if type(key) is not str:
                    raise LegacyRowError(f"a struct value keyed by {type(key).__name__}")
                out[key] = self.read(depth + 1)
            self.pos += 1
        else:
            n = self._byte() if code == ")" else self._int32()
            if n < 0 or n > len(self.data):
                raise LegacyRowError(f"a sequence of {n} items in a {len(self.data)}-byte row")
            items = [self.read(depth + 1) for _ in range(n)]
            out = items if code == "[" else tuple(items)
        if flag:
            self.refs[at] = out
        return out


def read_marshal_row(blob: bytes) -> list[Any]:
    """``[1, layout, *values]`` of a format 1 row, parsed without ``marshal.loads``.

    Raises LegacyRowError when the bytes are not exactly one such tuple.
    """
    if not blob or blob[0] & ~_FLAG_REF not in (ord("("), ord(")")):
        raise LegacyRowError(f"a format 1 row is a marshalled tuple; got {bytes(blob[:1])!r}")
    reader = _Reader(bytes(blob))
    row = reader.read()
    if reader.pos != len(blob):
        raise LegacyRowError(f"{len(blob) - reader.pos} bytes after the row")
    if type(row) is not tuple or len(row) < 2 or type(row[1]) is not str:
        raise LegacyRowError("a format 1 row is a tuple (1, layout, *values)")
    return list(row)
