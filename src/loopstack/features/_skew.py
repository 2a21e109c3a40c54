"""Training/serving skew: online values against an offline recomputation.

For each sampled entity the offline side is the newest source row up to now (the
same rule materialization applies); a feature mismatches when the values differ
(floats within a relative tolerance of 1e-6, nulls equal only to nulls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopstack.errors import Invalid

__all__ = ["FeatureSkew", "SkewReport", "check_skew"]

_MAX_EXAMPLES = 5


@dataclass
class FeatureSkew:
    feature: str
    compared: int
    mismatches: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass
class SkewReport:
    view: str
    entities: int
    features: list[FeatureSkew]
    missing_online: int  # sampled entities the offline side knows but the online store lacks

    @property
    def ok(self) -> bool:
        return self.missing_online == 0 and all(f.mismatches == 0 for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "entities": self.entities,
            "ok": self.ok,
            "missing_online": self.missing_online,
            "features": {
                f.feature: {
                    "compared": f.compared,
                    "mismatches": f.mismatches,
                    "rate": f.rate,
                    "examples": f.examples,
                }
                for f in self.features
            },
        }


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return False
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.astimezone(UTC) == b.astimezone(UTC)
    return bool(a == b)


def _offline_newest(view: Any, keys: list[tuple[Any, ...]], now: datetime) -> dict[Any, Any]:
    """Newest source row per sampled key with event time <= now, as Python dicts."""
    from loopstack.features._materialize import _newest_rows_sql, _quote
    from loopstack.features._sources import duckdb_connect

    columns = [*view.join_keys, view.timestamp_field, *(f.name for f in view.schema)]
    table = view.source.read(columns=columns, end=now)
    import json

    import numpy as np
    import pyarrow as pa

    from loopstack.features.online import encode_key

    con = duckdb_connect()
    try:
        chunk = table.append_column("__ls_rn", pa.array(np.arange(table.num_rows)))
        con.register("__ls_chunk", chunk)
        wanted = pa.table(
            {k: pa.array([key[i] for key in keys]) for i, k in enumerate(view.join_keys)}
        )
        con.register("__ls_keys", wanted)
        on = " AND ".join(f"c.{_quote(k)} = w.{_quote(k)}" for k in view.join_keys)
        con.execute(
            f"CREATE TEMP TABLE __ls_sel AS SELECT c.* FROM __ls_chunk c "
            f"SEMI JOIN __ls_keys w ON {on}"
        )
        out = con.sql(_newest_rows_sql(view, "__ls_sel", None)).to_arrow_table().to_pylist()
    finally:
        con.close()
    return {
        encode_key(tuple(r[k] for k in view.join_keys)): (r["__ls_ts"], json.loads(r["__ls_v"]))
        for r in out
    }


def check_skew(store: Any, view_name: str, sample: Any) -> SkewReport:
    """Compare the online values of ``sample``'s entities with the offline source.

    ``sample``: entity rows (list of dicts or a DataFrame with the view's join keys).

    >>> store.check_skew("driver_stats", [{"driver_id": 1001}]).to_dict()["ok"]
    True
    """
    from loopstack.features._definitions import FeatureView
    from loopstack.features._materialize import online_store, online_view_key
    from loopstack.features._online_read import _rows
    from loopstack.features.online import decode_values, encode_key

    view = store.get_feature_view(view_name)
    if not isinstance(view, FeatureView):
        raise Invalid(
            f"{view_name!r} is an on-demand feature view: its values are computed at "
            "read time by the same udf as in training, so they cannot skew",
            field="view",
        )
    rows = _rows(sample)
    keys: list[tuple[Any, ...]] = []
    for i, r in enumerate(rows):
        missing = [k for k in view.join_keys if k not in r]
        if missing:
            raise Invalid(f"sample row {i} has no join key {missing[0]!r}", field=missing[0])
        key = tuple(r[k] for k in view.join_keys)
        if key not in keys:
            keys.append(key)
    encoded = [encode_key(k) for k in keys]
    offline = _offline_newest(view, keys, datetime.now(UTC)) if keys else {}
    online = online_store(store).read(online_view_key(store, view.name), encoded)
    features = [FeatureSkew(f.name, 0, 0) for f in view.schema]
    missing_online = 0
    for key, enc, hit in zip(keys, encoded, online, strict=True):
        off = offline.get(enc)
        if off is None:
            continue  # nothing offline to compare with
        if hit is None:
            missing_online += 1
            continue
        on_values = decode_values(hit[1])
        for fs in features:
            fs.compared += 1
            a, b = on_values.get(fs.feature), off[1].get(fs.feature)
            if not _same(a, b):
                fs.mismatches += 1
                if len(fs.examples) < _MAX_EXAMPLES:
                    fs.examples.append(
                        {
                            "entity": dict(zip(view.join_keys, key, strict=True)),
                            "online": a,
                            "offline": b,
                            "online_event_ts_us": hit[0],
                            "offline_event_ts_us": off[0],
                        }
                    )
    return SkewReport(view.name, len(keys), features, missing_online)
