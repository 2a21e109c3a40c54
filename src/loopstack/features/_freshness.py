"""Freshness of the online store: lag and null rate per feature view, and their gauges.

Lag is now minus the newest event time in the online store (or, when the view has
no rows, minus the end of its last materialization). Null rates come from a scan of
the stored rows (at most ``sample`` of them, 100,000 by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ViewFreshness", "export_metrics", "freshness"]


@dataclass
class ViewFreshness:
    view: str
    rows: int
    newest_event_ts: float | None  # seconds since the epoch
    last_materialized_end: float | None
    lag_seconds: float | None
    null_rate: dict[str, float] = field(default_factory=dict)
    ttl_seconds: float | None = None  # the view's TTL; None: its rows never expire
    #: the lag is past the TTL: what the online store holds has expired (None when
    #: there is no TTL or nothing was ever materialized)
    stale: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def freshness(store: Any, *, sample: int = 100_000, view: str | None = None) -> list[ViewFreshness]:
    """Per batch feature view (or only ``view``): rows online, newest event, lag, null rate
    per feature, and whether the lag is past the view's TTL.

    >>> [f.lag_seconds for f in store.freshness()]
    """
    from loopstack.errors import Invalid
    from loopstack.features._definitions import FeatureView
    from loopstack.features._materialize import online_store

    online = online_store(store)
    now = time.time()
    if view is None:
        views = [v for v in store.list_feature_views() if isinstance(v, FeatureView)]
    else:
        one = store.get_feature_view(view)  # NotFound naming the views there are
        if not isinstance(one, FeatureView):
            raise Invalid(
                f"expected a batch feature view; {view!r} is an on-demand feature view, "
                "computed at read time, so it has no online rows to be fresh or stale",
                field="view",
            )
        views = [one]
    return [_view_freshness(store, online, v, sample, now) for v in views]


def _view_freshness(store: Any, online: Any, view: Any, sample: int, now: float) -> ViewFreshness:
    from loopstack.features._materialize import last_materialized_end, online_view_key
    from loopstack.features.online import decode_values

    names = view.feature_names
    nulls = dict.fromkeys(names, 0)
    rows = 0
    newest_us: int | None = None
    for _, ts, blob in online.scan(online_view_key(store, view.name)):
        newest_us = ts if newest_us is None or ts > newest_us else newest_us
        if rows < sample:
            values = decode_values(blob)
            for n in names:
                if values.get(n) is None:
                    nulls[n] += 1
        rows += 1
    end = last_materialized_end(store, view.name)
    newest = None if newest_us is None else newest_us / 1e6
    mark = None if end is None else end.timestamp()
    ref = newest if newest is not None else mark
    lag = None if ref is None else max(0.0, now - ref)
    ttl = None if view.ttl is None else view.ttl.total_seconds()
    seen = min(rows, sample)
    return ViewFreshness(
        view.name,
        rows,
        newest,
        mark,
        lag,
        {n: (nulls[n] / seen if seen else 0.0) for n in names},
        ttl,
        None if ttl is None or lag is None else lag > ttl,
    )


def export_metrics(store: Any, registry: Any) -> list[ViewFreshness]:
    """Set the freshness gauges on a ``prometheus_client`` registry (any registry).

    Gauges: ``loopstack_feature_view_lag_seconds{view}``,
    ``loopstack_feature_view_online_rows{view}``,
    ``loopstack_feature_null_rate{view,feature}``. Calling again updates them.
    """
    from prometheus_client import Gauge

    gauges = _gauges_for(registry, Gauge)
    report = freshness(store)
    for f in report:
        if f.lag_seconds is not None:
            gauges["lag"].labels(view=f.view).set(f.lag_seconds)
        gauges["rows"].labels(view=f.view).set(f.rows)
        for name, rate in f.null_rate.items():
            gauges["null"].labels(view=f.view, feature=name).set(rate)
    return report


_GAUGES: dict[int, dict[str, Any]] = {}


def _gauges_for(registry: Any, gauge: Any) -> dict[str, Any]:
    # one set of gauges per registry: registering a name twice raises in prometheus_client
    found = _GAUGES.get(id(registry))
    if found is None or found["registry"] is not registry:
        found = _GAUGES[id(registry)] = {
            "registry": registry,
            "lag": gauge(
                "loopstack_feature_view_lag_seconds",
                "Seconds since the newest event in the online store",
                ["view"],
                registry=registry,
            ),
            "rows": gauge(
                "loopstack_feature_view_online_rows",
                "Entities stored in the online store",
                ["view"],
                registry=registry,
            ),
            "null": gauge(
                "loopstack_feature_null_rate",
                "Share of online rows whose feature value is null",
                ["view", "feature"],
                registry=registry,
            ),
        }
    return found
