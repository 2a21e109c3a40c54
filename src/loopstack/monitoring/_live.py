"""An endpoint's live traffic, minute by minute, per model version: requests, errors,
p50 and p99 latency, and how often a shadow version answered as the primary did.

Read from the prediction log of the event log: ``predictions`` (one row per answered
request and per shadow copy) and ``prediction_errors`` (the requests that failed once a
model was chosen for them, written by the same serving replicas, so every replica's
traffic is in it, and a restart loses nothing that was flushed). A version serving as
a shadow is a series of its own (``shadow`` true): its requests are the copies it got,
its agreement is per model row (``agreeing_rows``); a primary's agreement is null.

The window is ``minutes`` whole minutes ending with the current one (half-open, as the
event log reads it), so the last bucket is still filling. ``requests`` counts the
answered and the failed requests (as the ``loopstack_serving_requests_total`` counter
does); the latency percentiles are of the answered ones.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, excerpt

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopstack.store.events import EventLog

__all__ = ["MAX_MINUTES", "LiveSeries", "LiveTraffic", "live_traffic"]

#: the longest window the live view reads (a day of minutes)
MAX_MINUTES = 1440
BUCKET_S = 60


@dataclass(frozen=True)
class LiveSeries:
    """One model version's traffic (as primary or as a shadow), a value per bucket."""

    model_version: str
    shadow: bool
    arms: list[str]
    requests: list[int]
    errors: list[int]
    p50_ms: list[float | None]
    p99_ms: list[float | None]
    #: per bucket: the share of the shadow's rows that agreed (null: none compared)
    agreement: list[float | None]
    compared_rows: list[int]
    #: over the whole window: requests, errors, error_rate, p50_ms, p99_ms, agreement,
    #: compared_rows
    totals: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveTraffic:
    """The live view of an endpoint: the buckets' starts and a series per version."""

    endpoint: str
    since: dt.datetime
    until: dt.datetime
    bucket_s: int
    series: list[LiveSeries]

    @property
    def buckets(self) -> list[int]:
        """Each bucket's start, in epoch milliseconds."""
        start = int(self.since.timestamp() * 1000)
        count = int((self.until - self.since).total_seconds()) // self.bucket_s
        return [start + i * self.bucket_s * 1000 for i in range(count)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (times in epoch milliseconds)."""
        return {
            "endpoint": self.endpoint,
            "since": int(self.since.timestamp() * 1000),
            "until": int(self.until.timestamp() * 1000),
            "minutes": len(self.buckets) * self.bucket_s // 60,
            "bucket_s": self.bucket_s,
            "buckets": self.buckets,
            "series": [asdict(s) for s in self.series],
        }


def _minutes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MINUTES:
        raise Invalid(
            f"the 'minutes' must be a whole number from 1 to {MAX_MINUTES}; got "
            f"{excerpt(value)} instead",
            field="minutes",
        )
    return value


def _read(events: EventLog, stream: str, endpoint: str, since: Any, until: Any) -> pa.Table:
    from loopstack.serving._prediction_log import ERRORS_STREAM, errors_schema, predictions_schema

    schema = predictions_schema() if stream != ERRORS_STREAM else errors_schema()
    return events.read(stream, since, until, where={"endpoint": endpoint}, schema=schema)


def _bucket(ts: pd.Series, since: dt.datetime, count: int) -> pd.Series:
    """Each timestamp's bucket index (0 .. count-1)."""
    import pandas as pd

    seconds = (pd.to_datetime(ts, utc=True) - pd.Timestamp(since)).dt.total_seconds()
    return (seconds // BUCKET_S).astype("int64").clip(0, count - 1)


def _per_bucket(values: pd.DataFrame, count: int, fn: Any) -> list[Any]:
    out: list[Any] = [None] * count
    for b, group in values.groupby("bucket"):
        out[int(b)] = fn(group)
    return out


def _percentile(q: float) -> Any:
    import numpy as np

    def of(frame: pd.DataFrame) -> float | None:
        got = frame["latency_ms"].to_numpy(dtype=float)
        got = got[np.isfinite(got)]
        return float(np.percentile(got, q)) if got.size else None

    return of


def _series(
    key: tuple[str, bool],
    answered: pd.DataFrame,
    failed: pd.DataFrame,
    compared: pd.DataFrame,
    count: int,
) -> LiveSeries:
    import numpy as np

    version, shadow = key
    ok = np.bincount(answered["bucket"], minlength=count) if len(answered) else np.zeros(count)
    bad = np.bincount(failed["bucket"], minlength=count) if len(failed) else np.zeros(count)
    requests = [int(a + b) for a, b in zip(ok, bad, strict=True)]
    errors = [int(b) for b in bad]
    rows = [0] * count
    agreement: list[float | None] = [None] * count
    if shadow and len(compared):
        for b, group in compared.groupby("bucket"):
            rows[int(b)] = len(group)
            agreement[int(b)] = float(group["agrees"].mean())
    arms = sorted({str(a) for a in (*answered["arm"].dropna(), *failed["arm"].dropna())})
    total = sum(requests)
    totals = {
        "requests": total,
        "errors": sum(errors),
        "error_rate": sum(errors) / total if total else None,
        "p50_ms": _percentile(50)(answered),
        "p99_ms": _percentile(99)(answered),
        "agreement": float(compared["agrees"].mean()) if shadow and len(compared) else None,
        "compared_rows": len(compared) if shadow else 0,
    }
    return LiveSeries(
        version,
        shadow,
        arms,
        requests,
        errors,
        _per_bucket(answered, count, _percentile(50)),
        _per_bucket(answered, count, _percentile(99)),
        agreement,
        rows,
        totals,
    )


def _agreement(raw: Any, since: dt.datetime, count: int) -> pd.DataFrame:
    """The window's shadow rows that the primary answered too, with their bucket."""
    import pandas as pd

    from loopstack.monitoring._agreement import agreeing_rows
    from loopstack.monitoring._flatten import flatten_predictions

    empty = pd.DataFrame({"model_version": [], "bucket": [], "agrees": []})
    flat = flatten_predictions(raw, include_shadow=True).to_pandas()
    if not len(flat) or "prediction" not in flat.columns:
        return empty
    is_shadow = flat["shadow"].fillna(False).astype(bool)
    columns = ["ts", "request_id", "row", "model_version", "prediction"]
    both = agreeing_rows(flat.loc[is_shadow, columns], flat.loc[~is_shadow])
    if not len(both):
        return empty
    both["bucket"] = _bucket(both["ts"], since, count)
    return both


def _order(key: tuple[str, bool]) -> tuple[bool, int, str]:
    version, shadow = key
    return (shadow, int(version) if version.isdigit() else 1 << 62, version)


def live_traffic(
    endpoint: str,
    minutes: int = 60,
    *,
    events: EventLog | None = None,
    now: float | None = None,
) -> LiveTraffic:
    """The last ``minutes`` minutes of ``endpoint`` (the current one included), per
    minute and model version (see the module doc); ``now`` in epoch seconds.

    >>> live = live_traffic("churn-api", 60)                   # doctest: +SKIP
    >>> live.series[0].totals["p99_ms"]                        # doctest: +SKIP
    """
    from loopstack.monitoring._window import default_event_log
    from loopstack.serving._prediction_log import ERRORS_STREAM

    count = _minutes(minutes) * 60 // BUCKET_S
    at = time.time() if now is None else float(now)
    until = dt.datetime.fromtimestamp((int(at) // BUCKET_S + 1) * BUCKET_S, dt.UTC)
    since = until - dt.timedelta(seconds=count * BUCKET_S)
    log = events if events is not None else default_event_log()
    raw = _read(log, "predictions", endpoint, since, until)
    answered = raw.select(["ts", "model_version", "arm", "latency_ms", "shadow"]).to_pandas()
    failed = _read(log, ERRORS_STREAM, endpoint, since, until)
    failed = failed.select(["ts", "model_version", "arm", "shadow"]).to_pandas()
    for frame in (answered, failed):
        frame["model_version"] = frame["model_version"].fillna("").astype(str)
        frame["shadow"] = frame["shadow"].fillna(False).astype(bool)
        frame["bucket"] = _bucket(frame["ts"], since, count) if len(frame) else []
    compared = _agreement(raw, since, count) if answered["shadow"].any() else None
    keys = {*zip(answered["model_version"], answered["shadow"], strict=True)}
    keys |= {*zip(failed["model_version"], failed["shadow"], strict=True)}
    series = []
    for key in sorted(keys, key=_order):

        def of(frame: pd.DataFrame, key: tuple[str, bool] = key) -> pd.DataFrame:
            return frame[(frame["model_version"] == key[0]) & (frame["shadow"] == key[1])]

        mine = (
            compared[compared["model_version"].astype(str) == key[0]]
            if compared is not None and key[1]
            else answered.iloc[0:0].assign(agrees=[])
        )
        series.append(_series(key, of(answered), of(failed), mine, count))
    return LiveTraffic(endpoint, since, until, BUCKET_S, series)
