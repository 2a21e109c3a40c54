"""Online stores: the newest feature values per entity, for low-latency reads.

Backends are chosen by URL scheme, one module each::

    sqlite:///path/online.db     embedded default (WAL, one WITHOUT ROWID table)
    redis://host:6379/0          a hash per view; ?prefix=NAME namespaces the keys
    memory://[name]              in-process, for tests (a name shares the store)

Every backend stores the same encoded rows (``_rows``): a versioned msgpack row
(format 2), JSON, or a format 1 (marshal) row written by an older loopstack, which is
read by a data-only parser (``_legacy``), never by ``marshal.loads``.
"""

from __future__ import annotations

from importlib import import_module

from loopstack.errors import Invalid
from loopstack.features.online._base import OnlineBatch, OnlineStore, ViewStats
from loopstack.features.online._rows import (
    READ_FORMATS,
    ROW_FORMAT,
    decode_json,
    decode_row,
    decode_values,
    encode_arrow_rows,
    encode_key,
    encode_rows,
    encode_values,
    is_binary_row,
    layout_names,
    row_layout,
)

__all__ = [
    "READ_FORMATS",
    "ROW_FORMAT",
    "SCHEMES",
    "OnlineBatch",
    "OnlineStore",
    "ViewStats",
    "decode_json",
    "decode_row",
    "decode_values",
    "encode_arrow_rows",
    "encode_key",
    "encode_rows",
    "encode_values",
    "is_binary_row",
    "layout_names",
    "open_online_store",
    "row_layout",
]

#: URL scheme -> "module:class"
SCHEMES: dict[str, str] = {
    "memory": "loopstack.features.online._memory:MemoryOnlineStore",
    "redis": "loopstack.features.online._redis:RedisOnlineStore",
    "rediss": "loopstack.features.online._redis:RedisOnlineStore",
    "sqlite": "loopstack.features.online._sqlite:SqliteOnlineStore",
}


def open_online_store(url: str) -> OnlineStore:
    """Open the online store named by ``url``.

    >>> store = open_online_store("memory://")
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    target = SCHEMES.get(scheme)
    if target is None:
        raise Invalid(
            f"the online store URL must start with one of "
            f"{', '.join(s + '://' for s in sorted(SCHEMES))}; got {url!r} instead",
            field="online_url",
        )
    module, cls = target.split(":")
    store: OnlineStore = getattr(import_module(module), cls)(url)
    return store
