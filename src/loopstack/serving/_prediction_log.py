"""The prediction log: every prediction, and the feedback that comes later, as event segments.

``record`` only appends a tuple to an in-memory buffer under a lock: no I/O,
no serialization, O(1), never blocking on the store. A background thread
flushes the buffer every ``flush_interval_s`` (and at ``close``) to the event
log's ``predictions`` and ``feedback`` streams: Parquet segments in the
artifact store, indexed in the metadata database, never through the audit
chain. **A crash loses what was recorded since the last completed flush** (at
most one flush interval, plus a flush that was under way); whatever a
completed flush wrote stays. When the buffer holds ``max_buffer`` rows,
``record`` drops the new row and counts it (``stats.dropped``) instead of
waiting. A flush that fails (store down) keeps its rows for the next one,
within the same bound.

Columns (DuckDB reads them as they are; the JSON ones with ``->``, ``->>``
or ``json_extract``):

``predictions``
    ``ts`` timestamp[us, UTC], ``request_id``, ``endpoint``, ``model_version``,
    ``arm`` (strings; ``arm`` may be null), ``inputs``, ``features``, ``output``
    (JSON text; non-finite floats become null, NumPy values plain JSON; a
    ``RawJSON`` value is written as it is),
    ``latency_ms`` (float64), ``shadow`` (bool: true for a shadow arm's copy, which
    answered nobody; its ``request_id`` is the primary's, so the two rows compare).
``feedback``
    ``ts``, ``request_id``, ``label`` (JSON text), ``reward`` (float64); any
    number of rows per request id.
``prediction_errors``
    ``ts``, ``request_id``, ``endpoint``, ``model_version``, ``arm`` (strings),
    ``status`` (int32: the HTTP status answered), ``error`` (its message, at most
    ``ERROR_TEXT_UP_TO`` characters), ``latency_ms`` (float64), ``shadow`` (bool: a
    shadow arm's copy failed). The requests that failed once a model was chosen for
    them: kept apart from ``predictions``, so drift and performance never read them.

The objects given to ``record`` are serialized by the flush thread: do not
change them after handing them over. Serialization costs the flush thread
CPU (and so the interpreter lock) per row; pass ``RawJSON`` for values that
already are JSON text.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid

if TYPE_CHECKING:
    import pyarrow as pa

    from loopstack.store.events import EventLog

__all__ = ["ERRORS_STREAM", "PredictionLog", "PredictionLogStats", "RawJSON"]

#: the stream of the requests that failed once a model was chosen for them
ERRORS_STREAM = "prediction_errors"

log = logging.getLogger("loopstack.serving")

_PREDICTION_COLUMNS = (
    "ts",
    "request_id",
    "endpoint",
    "model_version",
    "arm",
    "inputs",
    "features",
    "output",
    "latency_ms",
    "shadow",
)
_FEEDBACK_COLUMNS = ("ts", "request_id", "label", "reward")
#: the characters of a failed request's message that the log keeps
ERROR_TEXT_UP_TO = 500


def _answer_schema(*middle: tuple[str, Any]) -> pa.Schema:
    """Who answered which request (ts, request_id, endpoint, model_version, arm), the
    ``middle`` columns, then ``latency_ms`` and ``shadow``."""
    import pyarrow as pa

    text = pa.string()
    return pa.schema(
        [
            ("ts", pa.timestamp("us", "UTC")),
            ("request_id", text),
            ("endpoint", text),
            ("model_version", text),
            ("arm", text),
            *middle,
            ("latency_ms", pa.float64()),
            ("shadow", pa.bool_()),
        ]
    )


def predictions_schema() -> pa.Schema:
    """The columns of the ``predictions`` stream."""
    import pyarrow as pa

    return _answer_schema(*((name, pa.string()) for name in ("inputs", "features", "output")))


def feedback_schema() -> pa.Schema:
    """The columns of the ``feedback`` stream."""
    import pyarrow as pa

    return pa.schema(
        [
            ("ts", pa.timestamp("us", "UTC")),
            ("request_id", pa.string()),
            ("label", pa.string()),
            ("reward", pa.float64()),
        ]
    )


def errors_schema() -> pa.Schema:
    """The columns of the ``prediction_errors`` stream."""
    import pyarrow as pa

    return _answer_schema(("status", pa.int32()), ("error", pa.string()))


@dataclass
class PredictionLogStats:
    """What the writer did so far (rows of both streams)."""

    recorded: int = 0  # accepted into the buffer
    dropped: int = 0  # refused (buffer full, or the log closed) or trimmed after failures
    flushed: int = 0  # written by completed flushes
    flushes: int = 0  # completed flushes that wrote something
    failed_flushes: int = 0
    last_error: str | None = None


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """A JSON-able stand-in for what ``json`` cannot write (NumPy, datetimes, bytes, ...)."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars, pandas objects
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


class RawJSON(str):
    """Text that already is JSON (such as the inputs part of a request body the server
    parsed): the log writes it as it is, saving a second serialization. It is not
    checked, so it must be valid JSON.

    >>> plog.record(rid, "churn", "churn/3", out, inputs=RawJSON(body_inputs))  # doctest: +SKIP
    """

    __slots__ = ()


#: one encoder for every value (``json.dumps`` with options builds a new one per call)
_ENCODER = json.JSONEncoder(default=_plain, separators=(",", ":"), allow_nan=False)


def to_json(value: Any) -> str | None:
    """``value`` as compact JSON text (None stays None; NaN and infinities become null)."""
    if value is None:
        return None
    if type(value) is RawJSON:
        return str.__str__(value)
    try:
        return _ENCODER.encode(value)
    except ValueError:  # a non-finite float somewhere: write it as null
        plain = json.loads(json.dumps(value, default=_plain))
        return _ENCODER.encode(_finite(plain))


def _epoch_us(value: Any) -> int:
    if isinstance(value, int):  # time.time_ns(), from record()
        return value // 1000
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int((value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
    return int(float(value) * 1_000_000)  # epoch seconds


class PredictionLog:
    """A non-blocking, buffered writer of predictions and feedback into an ``EventLog``.

    >>> plog = PredictionLog(EventLog(open_stores()))                       # doctest: +SKIP
    >>> plog.record("req-1", "churn", "churn/3", {"out": 1}, inputs=row,   # doctest: +SKIP
    ...             latency_ms=1.8)
    >>> plog.record_feedback("req-1", label=0)                             # doctest: +SKIP
    >>> plog.close()  # flushes what is left                               # doctest: +SKIP

    ``on_flush(stream, rows)`` is called from the flush thread after each
    segment is written (for metrics).
    """

    def __init__(
        self,
        events: EventLog,
        *,
        flush_interval_s: float = 1.0,
        max_buffer: int = 100_000,
        on_flush: Callable[[str, int], None] | None = None,
        predictions_stream: str = "predictions",
        feedback_stream: str = "feedback",
        errors_stream: str = ERRORS_STREAM,
    ) -> None:
        if not flush_interval_s > 0:
            raise Invalid(
                f"the 'flush_interval_s' must be > 0; got {flush_interval_s!r}",
                field="flush_interval_s",
            )
        if not isinstance(max_buffer, int) or max_buffer < 1:
            raise Invalid(f"the 'max_buffer' must be >= 1; got {max_buffer!r}", field="max_buffer")
        self.events = events
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.on_flush = on_flush
        self.predictions_stream = predictions_stream
        self.feedback_stream = feedback_stream
        self.errors_stream = errors_stream
        self.stats = PredictionLogStats()
        self._lock = threading.Lock()  # guards the buffers and the counters
        self._predictions: list[tuple[Any, ...]] = []
        self._feedback: list[tuple[Any, ...]] = []
        self._errors: list[tuple[Any, ...]] = []
        self._closed = False
        # the flush thread's schedule: flush() asks for a generation and waits for it
        self._cv = threading.Condition()
        self._requested = self._completed = 0
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="loopstack-prediction-log", daemon=True
        )
        self._thread.start()
        self._at_exit = _closer(self)
        atexit.register(self._at_exit)

    # -- the request path ---------------------------------------------------------------
    def record(
        self,
        request_id: str,
        endpoint: str,
        model_version: str,
        output: Any,
        *,
        inputs: Any = None,
        features: Any = None,
        arm: str | None = None,
        latency_ms: float | None = None,
        ts: dt.datetime | float | None = None,
        shadow: bool = False,
    ) -> bool:
        """Buffer one prediction; False if it was dropped (buffer full, or log closed).

        Never does I/O and never waits for a flush. ``ts`` defaults to now;
        ``inputs``, ``features`` and ``output`` are written as JSON text; ``shadow``
        marks a shadow arm's copy.
        """
        row = (
            time.time_ns() if ts is None else ts,
            request_id,
            endpoint,
            model_version,
            arm,
            inputs,
            features,
            output,
            latency_ms,
            shadow,
        )
        return self._buffer("_predictions", row)

    def record_feedback(
        self,
        request_id: str,
        *,
        label: Any = None,
        reward: float | None = None,
        ts: dt.datetime | float | None = None,
    ) -> bool:
        """Buffer a label and/or reward for an earlier prediction (as many as arrive)."""
        if label is None and reward is None:
            raise Invalid("feedback needs a label or a reward; got neither", field="label")
        row = (time.time_ns() if ts is None else ts, request_id, label, reward)
        return self._buffer("_feedback", row)

    def record_error(
        self,
        request_id: str,
        endpoint: str,
        model_version: str | None,
        status: int,
        error: str,
        *,
        arm: str | None = None,
        latency_ms: float | None = None,
        ts: dt.datetime | float | None = None,
        shadow: bool = False,
    ) -> bool:
        """Buffer one failed request (the ``status`` answered and why); False if dropped.

        As ``record``: no I/O, never waits. ``error`` is cut to ``ERROR_TEXT_UP_TO``
        characters.
        """
        row = (
            time.time_ns() if ts is None else ts,
            request_id,
            endpoint,
            model_version,
            arm,
            int(status),
            str(error)[:ERROR_TEXT_UP_TO],
            latency_ms,
            shadow,
        )
        return self._buffer("_errors", row)

    def _buffer(self, attr: str, row: tuple[Any, ...]) -> bool:
        """Append ``row`` to the buffer ``attr`` (looked up under the lock: a flush swaps
        the buffers); False, counted, when full or closed."""
        with self._lock:
            rows = getattr(self, attr)
            if self._closed or len(rows) >= self.max_buffer:
                self.stats.dropped += 1
                return False
            rows.append(row)
            self.stats.recorded += 1
        return True

    @property
    def buffered(self) -> int:
        """Rows waiting for the next flush."""
        return len(self._predictions) + len(self._feedback) + len(self._errors)

    # -- flushing -----------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Write everything buffered now and wait until it is written; False on timeout."""
        with self._cv:
            self._requested += 1
            target = self._requested
            self._cv.notify_all()
            return self._cv.wait_for(lambda: self._completed >= target, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Refuse new rows, flush the buffered ones, and stop the flush thread."""
        with self._lock:
            self._closed = True
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._thread.join(timeout)
        atexit.unregister(self._at_exit)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(
                    lambda: self._requested > self._completed or self._stopping,
                    self.flush_interval_s,
                )
                target, stopping = self._requested, self._stopping
            self._flush_once()
            with self._cv:
                self._completed = max(self._completed, target)
                self._cv.notify_all()
            if stopping:
                return

    def _flush_once(self) -> None:
        with self._lock:
            predictions, self._predictions = self._predictions, []
            feedback, self._feedback = self._feedback, []
            errors, self._errors = self._errors, []
        for stream, rows, build, keep in (
            (self.predictions_stream, predictions, self._prediction_table, "_predictions"),
            (self.feedback_stream, feedback, self._feedback_table, "_feedback"),
            (self.errors_stream, errors, self._errors_table, "_errors"),
        ):
            if not rows:
                continue
            try:
                self.events.append(stream, build(rows))
            except Exception as exc:  # noqa: BLE001 - the writer must outlive a bad store
                self._keep(keep, rows, exc)
                continue
            with self._lock:
                self.stats.flushed += len(rows)
                self.stats.flushes += 1
            if self.on_flush is not None:
                try:
                    self.on_flush(stream, len(rows))
                except Exception:  # noqa: BLE001
                    log.exception("the prediction log's on_flush hook failed")

    def _keep(self, attr: str, rows: list[tuple[Any, ...]], exc: Exception) -> None:
        """Put a failed flush's rows back in front, within ``max_buffer`` (oldest go first)."""
        log.warning("the prediction log could not flush %d rows: %s", len(rows), exc)
        with self._lock:
            merged = rows + getattr(self, attr)
            excess = max(0, len(merged) - self.max_buffer)
            setattr(self, attr, merged[excess:])
            self.stats.dropped += excess
            self.stats.failed_flushes += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _answer_table(
        rows: list[tuple[Any, ...]], schema: pa.Schema, middle: list[Any]
    ) -> pa.Table:
        """Rows laid out as ``_answer_schema``: the five request columns, the ``middle``
        columns (each built by its function from its values), latency and shadow."""
        import pyarrow as pa

        cols = list(zip(*rows, strict=True))
        n = len(middle)
        arrays = [
            pa.array([_epoch_us(v) for v in cols[0]], pa.int64()).cast(schema.field("ts").type),
            *(pa.array([None if v is None else str(v) for v in c], pa.string()) for c in cols[1:5]),
            *(build(c) for build, c in zip(middle, cols[5 : 5 + n], strict=True)),
            pa.array([None if v is None else float(v) for v in cols[5 + n]], pa.float64()),
            pa.array([bool(v) for v in cols[6 + n]], pa.bool_()),
        ]
        return pa.Table.from_arrays(arrays, schema=schema)

    @classmethod
    def _prediction_table(cls, rows: list[tuple[Any, ...]]) -> pa.Table:
        import pyarrow as pa

        def as_json(values: Any) -> pa.Array:
            return pa.array([to_json(v) for v in values], pa.string())

        return cls._answer_table(rows, predictions_schema(), [as_json] * 3)

    @staticmethod
    def _feedback_table(rows: list[tuple[Any, ...]]) -> pa.Table:
        import pyarrow as pa

        ts, request_ids, labels, rewards = zip(*rows, strict=True)
        schema = feedback_schema()
        arrays = [
            pa.array([_epoch_us(v) for v in ts], pa.int64()).cast(schema.field("ts").type),
            pa.array([str(v) for v in request_ids], pa.string()),
            pa.array([to_json(v) for v in labels], pa.string()),
            pa.array([None if v is None else float(v) for v in rewards], pa.float64()),
        ]
        return pa.Table.from_arrays(arrays, schema=schema)

    @classmethod
    def _errors_table(cls, rows: list[tuple[Any, ...]]) -> pa.Table:
        import pyarrow as pa

        def status(values: Any) -> pa.Array:
            return pa.array(values, pa.int32())

        def text(values: Any) -> pa.Array:
            return pa.array(values, pa.string())

        return cls._answer_table(rows, errors_schema(), [status, text])

    # -- reads --------------------------------------------------------------------------
    def read_predictions(
        self,
        endpoint: str | None = None,
        since: dt.datetime | int | None = None,
        until: dt.datetime | int | None = None,
    ) -> pa.Table:
        """Flushed predictions with ``since <= ts < until`` (of one endpoint, if given)."""
        return self._read(self.predictions_stream, predictions_schema(), endpoint, since, until)

    def read_errors(
        self,
        endpoint: str | None = None,
        since: dt.datetime | int | None = None,
        until: dt.datetime | int | None = None,
    ) -> pa.Table:
        """Flushed failed requests with ``since <= ts < until`` (of one endpoint, if given)."""
        return self._read(self.errors_stream, errors_schema(), endpoint, since, until)

    def _read(
        self, stream: str, schema: pa.Schema, endpoint: str | None, since: Any, until: Any
    ) -> pa.Table:
        where = {"endpoint": endpoint} if endpoint is not None else None
        return self.events.read(stream, since, until, where=where, schema=schema)

    def read_feedback(
        self, since: dt.datetime | int | None = None, until: dt.datetime | int | None = None
    ) -> pa.Table:
        """Flushed feedback rows with ``since <= ts < until``, every one as it arrived."""
        return self.events.read(self.feedback_stream, since, until, schema=feedback_schema())

    def read_with_feedback(
        self,
        endpoint: str | None = None,
        since: dt.datetime | int | None = None,
        until: dt.datetime | int | None = None,
    ) -> pa.Table:
        """The predictions of the window, one row each, with their feedback joined by request id.

        Added columns: ``label`` (the latest non-null label), ``reward`` (the sum of
        the rewards), ``feedback_count`` (0 when none came) and ``feedback_ts``
        (the latest). Feedback is looked up from ``since`` on, with no end.
        """
        import duckdb
        import pyarrow as pa

        predictions = self.read_predictions(endpoint, since, until)
        predictions = predictions.append_column(
            "_row", pa.array(range(predictions.num_rows), pa.int64())
        )
        feedback = self.read_feedback(since)
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("p", predictions)
            con.register("f", feedback)
            return con.sql(
                """
                SELECT p.* EXCLUDE (_row), f.label, f.reward,
                       coalesce(f.feedback_count, 0) AS feedback_count, f.feedback_ts
                FROM p LEFT JOIN (
                    SELECT request_id,
                           arg_max(label, ts) FILTER (WHERE label IS NOT NULL) AS label,
                           sum(reward) AS reward,
                           count(*) AS feedback_count,
                           max(ts) AS feedback_ts
                    FROM f GROUP BY request_id
                ) AS f ON p.request_id = f.request_id
                ORDER BY p._row
                """
            ).to_arrow_table()
        finally:
            con.close()


def _closer(plog: PredictionLog) -> Callable[[], None]:
    """An exit hook that flushes the log if it is still alive, without keeping it alive."""
    ref = weakref.ref(plog)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close(timeout=10)

    return close
