"""Business KPIs beside model metrics: named values in the event stream ``kpis``
(``ts``, ``name``, ``endpoint``, ``value`` float64, ``tags`` JSON text)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid

if TYPE_CHECKING:
    import pandas as pd

    from loopstack.store.events import EventLog

__all__ = ["KPI_STREAM", "log_kpi", "read_kpis"]

KPI_STREAM = "kpis"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,127}")


def _check_name(name: Any, field: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise Invalid(
            f"the {field!r} must be 1-128 letters, digits, '_', '.', ':' or '-' starting with a "
            f"letter; got {name!r}",
            field=field,
        )
    return name


def _when(value: Any, field: str) -> dt.datetime:
    if isinstance(value, bool) or not isinstance(value, dt.datetime | int | float):
        raise Invalid(
            f"the {field!r} must be a datetime or epoch seconds; got {value!r}", field=field
        )
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def log_kpi(
    name: str,
    value: float,
    *,
    ts: dt.datetime | float | None = None,
    endpoint: str | None = None,
    tags: dict[str, Any] | None = None,
    events: EventLog | None = None,
) -> None:
    """Record one value of the KPI ``name`` (a finite number), at ``ts`` (default now),
    for ``endpoint`` when it belongs to one, with ``tags`` (a JSON-able dict)."""
    import pyarrow as pa

    from loopstack.monitoring._labels import default_events

    _check_name(name, "name")
    if endpoint is not None:
        _check_name(endpoint, "endpoint")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        and not hasattr(value, "__float__")
    ):
        raise Invalid(
            f"the KPI value must be a number; got {type(value).__name__} {value!r}", field="value"
        )
    number = float(value)
    if not math.isfinite(number):
        raise Invalid(f"the KPI value must be finite; got {number}", field="value")
    if tags is not None and (
        not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags)
    ):
        raise Invalid(f"the 'tags' must be a dict with text keys; got {tags!r}", field="tags")
    try:
        tag_text = (
            None if tags is None else json.dumps(tags, allow_nan=False, separators=(",", ":"))
        )
    except (TypeError, ValueError) as exc:
        raise Invalid(f"the 'tags' must be JSON-able: {exc}", field="tags") from None
    when = _when(ts, "ts") if ts is not None else dt.datetime.now(dt.UTC)
    table = pa.table(
        {
            "ts": pa.array([when], type=pa.timestamp("us", "UTC")),
            "name": pa.array([name], type=pa.string()),
            "endpoint": pa.array([endpoint], type=pa.string()),
            "value": pa.array([number], type=pa.float64()),
            "tags": pa.array([tag_text], type=pa.string()),
        }
    )
    (events or default_events()).append(KPI_STREAM, table)


def read_kpis(
    name: str | None = None,
    endpoint: str | None = None,
    since: dt.datetime | float | None = None,
    until: dt.datetime | float | None = None,
    *,
    events: EventLog | None = None,
) -> pd.DataFrame:
    """The KPI values with ``since <= ts < until`` (either end open), of ``name`` and
    ``endpoint`` when given, ordered by time: columns ts, name, endpoint, value, tags
    (tags parsed back into dicts)."""
    import pandas as pd

    from loopstack.monitoring._labels import default_events

    where: dict[str, Any] = {}
    if name is not None:
        where["name"] = _check_name(name, "name")
    if endpoint is not None:
        where["endpoint"] = _check_name(endpoint, "endpoint")
    lo = None if since is None else _when(since, "since")
    hi = None if until is None else _when(until, "until")
    table = (events or default_events()).read(KPI_STREAM, lo, hi, where=where or None)
    columns = ["ts", "name", "endpoint", "value", "tags"]
    if table.num_rows == 0 or "name" not in table.column_names:
        return pd.DataFrame(
            {c: pd.Series(dtype="float64" if c == "value" else object) for c in columns}
        )
    frame = table.select(columns).to_pandas()
    frame["tags"] = [json.loads(t) if isinstance(t, str) else None for t in frame["tags"].tolist()]
    return frame.reset_index(drop=True)
