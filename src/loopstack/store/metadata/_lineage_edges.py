"""The one place lineage edges are written: every domain records its edges through here.

An edge is ``(src_type, src_id, dst_type, dst_id, relation)``: ``src`` was used to make
(or now feeds) ``dst``. ``add_edges`` inserts the edges not yet recorded, inside the
caller's transaction, and returns those it added; an edge already there is kept as it
is (its first relation and time), so writing the same edge twice is a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Connection, Table, and_, or_, select

from loopstack.store.metadata.schema import LineageEdge

__all__ = ["Edge", "add_edges"]

#: (src_type, src_id, dst_type, dst_id, relation)
Edge = tuple[str, str, str, str, str]
_EDGES = cast(Table, LineageEdge.__table__)


def add_edges(conn: Connection, edges: Iterable[Edge], *, now_ms: int | None = None) -> list[Edge]:
    """Record ``edges`` (within ``conn``'s transaction); the ones that were new."""
    wanted = list(dict.fromkeys(edges))
    if not wanted:
        return []
    keys = [(a, b, c, d) for a, b, c, d, _ in wanted]
    c = _EDGES.c
    found = {
        (r.src_type, r.src_id, r.dst_type, r.dst_id)
        for r in conn.execute(
            select(c.src_type, c.src_id, c.dst_type, c.dst_id).where(
                or_(
                    *(
                        and_(c.src_type == a, c.src_id == b, c.dst_type == t, c.dst_id == d)
                        for a, b, t, d in keys
                    )
                )
            )
        )
    }
    now = int(time.time() * 1000) if now_ms is None else now_ms
    fresh = [e for e in wanted if e[:4] not in found]
    fresh = list({e[:4]: e for e in fresh}.values())  # one relation per edge
    if fresh:
        conn.execute(
            _EDGES.insert(),
            [
                {
                    "src_type": a,
                    "src_id": b,
                    "dst_type": t,
                    "dst_id": d,
                    "relation": rel,
                    "created_at": now,
                }
                for a, b, t, d, rel in fresh
            ],
        )
    return fresh
