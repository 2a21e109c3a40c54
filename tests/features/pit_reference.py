"""A slow, obviously correct point-in-time join, to check the fast one against."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd


def utc(value: Any) -> pd.Timestamp | None:
    if value is None or pd.isna(value):
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def reference_join(
    entity_df: pd.DataFrame,
    feature_df: pd.DataFrame,
    keys: list[str],
    features: list[str],
    *,
    ts_entity: str = "event_timestamp",
    ts_feature: str = "event_timestamp",
    ttl: timedelta | None = None,
) -> list[dict[str, Any]]:
    """For each entity row, in order: the latest feature row with the same keys and
    ts <= entity ts (and >= entity ts - ttl); the last written among equal timestamps."""
    rows = feature_df.to_dict("records")
    out = []
    for e in entity_df.to_dict("records"):
        t = utc(e[ts_entity])
        best: tuple[Any, int] | None = None
        for i, r in enumerate(rows):
            if t is None or any(pd.isna(e[k]) or r[k] != e[k] for k in keys):
                continue
            ft = utc(r[ts_feature])
            if ft is None or ft > t or (ttl is not None and ft < t - ttl):
                continue
            if best is None or (ft, i) >= (best[0], best[1]):
                best = (ft, i)
        if best is None:
            out.append({f: None for f in features})
        else:
            r = rows[best[1]]
            out.append({f: None if pd.isna(r[f]) else r[f] for f in features})
    return out
