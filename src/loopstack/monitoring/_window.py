"""Windows of the prediction log, read a segment at a time, as flat tables.

``window_batches(endpoint, "24h")`` asks the event log which ``predictions``
segments overlap the window and yields one ``WindowPart`` per segment; a part
reads and flattens its rows (``flatten_predictions``) only when its ``table`` is
first asked for, so a caller holding a cached result for the part's ``key``
(``SegmentCache``) never reads it again. A segment lying wholly inside the window
(``part.whole``) has the same rows whatever the window, so its key names the
segment and the filters only; a segment cut by the window's ends also names the
ends. ``read_window`` reads the whole window in one query and flattens it once
(windows that fit in memory; with many small segments it is much faster than the parts:
each part costs a few DuckDB statements, ~50 ms here). Parts are ordered by ``ts``
within themselves; ``read_window`` by ``ts`` across the window.

Windows are half-open, ``since <= ts < until``; each end is a datetime (naive:
UTC), epoch seconds, an ISO 8601 string, or a duration (``"24h"``, ``"7d"``,
``"30m"``, ``"90s"``, ``"2w"``) meaning that long before now.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, excerpt
from loopstack.monitoring._flatten import flatten_predictions, skipped_requests

if TYPE_CHECKING:
    import pyarrow as pa

    from loopstack.store.events import EventLog, Segment

__all__ = [
    "SegmentCache",
    "WindowPart",
    "default_event_log",
    "read_window",
    "to_datetime",
    "window_batches",
]

STREAM = "predictions"
#: bumped when the flat layout changes, so cached per-part results are not reused
FLAT_VERSION = "1"
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def to_datetime(value: Any, field: str = "since") -> dt.datetime | None:
    """A window end as an aware UTC datetime: a datetime (naive: UTC), epoch seconds,
    an ISO 8601 string, or a duration before now (``"24h"``, ``"7d"``); None stays None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    if isinstance(value, str):
        found = _DURATION.fullmatch(value)
        if found:
            seconds = float(found.group(1)) * _UNITS[found.group(2)]
            return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
        try:
            return to_datetime(dt.datetime.fromisoformat(value), field)
        except ValueError:
            pass
    raise Invalid(
        f"the {field!r} must be a datetime, epoch seconds, an ISO 8601 time or a duration "
        f"before now such as '24h' or '7d'; got {excerpt(value)}",
        field=field,
    )


def default_event_log() -> EventLog:
    """The event log of the configured loopstack home/DB, in the project in use (where
    serving writes its prediction log)."""
    from loopstack.auth import project_in_use
    from loopstack.config import settings
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog
    from loopstack.store.remote import local_config

    config = settings()
    stores = open_stores(local_config(config))
    return EventLog(stores, project_id=project_in_use(stores.db, config))


def _us(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class WindowPart:
    """One segment of a window: its identity and cache key now, its flat rows on demand.

    ``table`` is the flat table (``flatten_predictions``) of the segment's requests in
    the window; ``n_requests`` the logged requests read (skipped ones too), ``skipped``
    those that did not parse. ``whole``: the segment lies inside the window, so its
    result holds for any window that contains it.
    """

    def __init__(
        self,
        segment: Segment,
        key: str,
        whole: bool,
        load: Callable[[], tuple[pa.Table, int]],
    ) -> None:
        self.segment = segment
        self.key = key
        self.whole = whole
        self._load = load

    @property
    def segment_id(self) -> int:
        """The segment's id in the event log's index."""
        return self.segment.id

    @property
    def digest(self) -> str:
        """The sha256 of the segment's Parquet bytes."""
        return self.segment.digest

    @cached_property
    def _loaded(self) -> tuple[pa.Table, int]:
        return self._load()

    @property
    def table(self) -> pa.Table:
        """The part's rows, one per model row (read and flattened on first use)."""
        return self._loaded[0]

    @property
    def n_requests(self) -> int:
        """Logged requests of this part in the window (before flattening)."""
        return self._loaded[1]

    @property
    def skipped(self) -> int:
        """Requests whose JSON did not parse or whose parts disagreed on their rows."""
        return skipped_requests(self.table)

    def __repr__(self) -> str:
        return (
            f"WindowPart(segment_id={self.segment_id}, digest={self.digest[:12]}, "
            f"whole={self.whole})"
        )


def _window(
    endpoint: str, since: Any, until: Any, events: EventLog | None, model_version: str | None
) -> tuple[dt.datetime | None, dt.datetime | None, EventLog, dict[str, Any]]:
    """The window's ends, the event log and the row filter, checked."""
    if not isinstance(endpoint, str) or not endpoint:
        raise Invalid(f"the 'endpoint' must be a name; got {excerpt(endpoint)}", field="endpoint")
    start, end = to_datetime(since, "since"), to_datetime(until, "until")
    if start is not None and end is not None and start >= end:
        raise Invalid(f"the window is empty: since {start} is not before until {end}")
    log = events if events is not None else default_event_log()
    where: dict[str, Any] = {"endpoint": endpoint}
    if model_version is not None:
        where["model_version"] = str(model_version)
    return start, end, log, where


def window_batches(
    endpoint: str,
    since: Any = None,
    until: Any = None,
    *,
    events: EventLog | None = None,
    model_version: str | None = None,
    include_shadow: bool = False,
) -> Iterator[WindowPart]:
    """The window's ``predictions`` of ``endpoint`` (of one ``model_version``, if given),
    a ``WindowPart`` per event segment, in append order.

    >>> for part in window_batches("churn", "24h"):               # doctest: +SKIP
    ...     total += cache.get_or_compute(part, "rows", lambda t: t.num_rows)
    """
    from loopstack.serving._prediction_log import predictions_schema

    start, end, log, where = _window(endpoint, since, until, events, model_version)
    filters = json.dumps(
        [FLAT_VERSION, endpoint, where.get("model_version"), include_shadow], separators=(",", ":")
    )
    lo = _us(start) if start is not None else None
    hi = _us(end) if end is not None else None
    for segment in log.segments(STREAM, start, end):
        whole = (lo is None or segment.min_ts * 1000 >= lo) and (
            hi is None or segment.max_ts * 1000 < hi
        )
        key = f"{segment.digest}|{filters}" + ("" if whole else f"|{lo}|{hi}")

        def load(segment: Segment = segment) -> tuple[pa.Table, int]:
            raw = log.read_segments([segment], start, end, where=where, schema=predictions_schema())
            return flatten_predictions(raw, include_shadow=include_shadow), raw.num_rows

        yield WindowPart(segment, key, whole, load)


def read_window(
    endpoint: str,
    since: Any = None,
    until: Any = None,
    *,
    events: EventLog | None = None,
    model_version: str | None = None,
    include_shadow: bool = False,
) -> pa.Table:
    """The whole window as one flat table (for windows that fit in memory): every segment
    read in one query and flattened at once, so it costs one pass however many segments
    the log holds. ``skipped_requests(result)`` counts the requests skipped.

    >>> flat = read_window("churn", "24h")   # doctest: +SKIP
    """
    from loopstack.serving._prediction_log import predictions_schema

    start, end, log, where = _window(endpoint, since, until, events, model_version)
    raw = log.read(STREAM, start, end, where=where, schema=predictions_schema())
    return flatten_predictions(raw, include_shadow=include_shadow)


class SegmentCache:
    """JSON-able results per (window part, key), one file each, so a segment's result
    (a profile, counts) is computed once. Writes go to a temporary file renamed into
    place, so concurrent processes see a whole result or none.

    >>> cache = SegmentCache()                                               # doctest: +SKIP
    >>> cache.get_or_compute(part, "profile:v1", lambda t: profile(t).to_dict())  # doctest: +SKIP
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        if directory is None:
            from loopstack.config import settings

            directory = settings().home / "cache" / "monitoring"
        self.directory = Path(directory)

    def _path(self, part_key: str, key: str) -> Path:
        name = hashlib.sha256(f"{part_key}\0{key}".encode()).hexdigest()
        return self.directory / name[:2] / f"{name}.json"

    def get(self, part_key: str, key: str) -> Any | None:
        """The stored result for ``(part_key, key)``, or None."""
        path = self._path(part_key, key)
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("part") != part_key or doc.get("key") != key:
            return None
        return doc.get("value")

    def put(self, part_key: str, key: str, value: Any) -> None:
        """Store ``value`` (JSON-able) for ``(part_key, key)``."""
        path = self._path(part_key, key)
        try:
            text = json.dumps({"part": part_key, "key": key, "value": value, "at": time.time()})
        except (TypeError, ValueError) as exc:
            raise Invalid(
                f"a cached result must be JSON-able; got {type(value).__name__} ({exc})",
                field="value",
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_compute(self, part: WindowPart, key: str, compute: Callable[[pa.Table], Any]) -> Any:
        """``compute(part.table)``, stored for a whole segment; a stored result is returned
        without reading the segment. A part cut by the window's ends is computed each time
        (its rows depend on the window) and not stored."""
        if part.whole:
            found = self.get(part.key, key)
            if found is not None:
                return found
        value = compute(part.table)
        if part.whole:
            self.put(part.key, key, value)
        return value
