"""``StreamScorer``: events from a ``StreamSource`` scored by an endpoint's stored
deployment, written to the prediction log, acknowledged only once durable.

One pass over a batch:

1. ids already in the source's processed set are acknowledged (a replay writes nothing);
2. a redelivered event (a restart, or reclaimed from a dead consumer) is looked up in
   the prediction log by its request id (``<stream>:<event id>``): found, it was written
   before its consumer died between the flush and the ack, so it is only acknowledged;
3. every other event is parsed (a JSON object in the ``data`` field, else the entry's
   fields, each read as JSON where it can be) and answered through the serving path
   (``Answerer.predict``: the deployment's routing policy, sticky per the routing-key
   field, shadows included); an event that cannot be parsed or does not match the
   signature goes to the dead-letter stream with the reason, acknowledged;
4. the score is written back to the online store (``write_feature``), then the
   prediction log is flushed and checked empty (durable), then the batch is marked
   processed and acknowledged in one step (``StreamSource.ack``).

So each event is written to the prediction log once, whichever consumer dies where,
as long as a batch takes less than the source's claim idle time (a live consumer's
events are never reclaimed under it). The deployment is re-read every ``refresh_s``:
a new revision (a canary, a promotion) is picked up as it is served.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, NotFound, StoreUnavailable
from loopstack.serving.stream._metrics import StreamMetrics
from loopstack.serving.stream._source import StreamEvent, StreamSource

if TYPE_CHECKING:
    from loopstack.serving._answer import Answerer
    from loopstack.serving._prediction_log import PredictionLog

__all__ = ["StreamScorer", "StreamStats", "parse_write_feature"]

log = logging.getLogger("loopstack.serving")

#: how far before an event's time a redelivered event's prediction is looked for
_CLOCK_SLACK_MS = 10 * 60 * 1000


def parse_write_feature(text: str) -> tuple[str, str]:
    """``VIEW:FEATURE`` as ``(view, feature)``."""
    view, sep, feature = text.partition(":")
    if not sep or not view or not feature:
        raise Invalid(
            f"a write-back feature is VIEW:FEATURE (churn_scores:score); got {text!r}",
            field="write_feature",
        )
    return view, feature


@dataclass
class StreamStats:
    """What a scorer did so far."""

    scored: int = 0
    skipped: int = 0  # already written (a replay, or a write before a crash)
    dead_lettered: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    last_lag_ms: float | None = None

    @property
    def rate(self) -> float:
        """Events scored per second since the start."""
        elapsed = time.monotonic() - self.started
        return self.scored / elapsed if elapsed > 0 else 0.0


def _record(event: StreamEvent) -> dict[str, Any]:
    """The event's input row; Invalid naming what is wrong."""
    raw = event.fields.get("data")
    if raw is not None:
        try:
            got = json.loads(raw)
        except ValueError as exc:
            raise Invalid(f"the 'data' field is not JSON ({exc})", field="data") from None
        if not isinstance(got, dict):
            raise Invalid(
                f"the 'data' field must be a JSON object; got {type(got).__name__}", field="data"
            )
        return got
    if not event.fields:
        raise Invalid("the event has no fields", field="data")
    row: dict[str, Any] = {}
    for key, value in event.fields.items():
        try:
            row[key] = json.loads(value)
        except ValueError:
            row[key] = value
    return row


def _score(outputs: dict[str, Any]) -> Any:
    """One number for the write-back: a binary classifier's probability of its second
    class, else the prediction."""
    proba = outputs.get("predict_proba")
    if proba is not None and len(proba) and getattr(proba, "ndim", 0) == 2 and proba.shape[1] == 2:
        return float(proba[0, 1])
    value = outputs["predict"][0]
    return value.item() if hasattr(value, "item") else value


class StreamScorer:
    """Scores a stream with the endpoint's stored deployment (see the module doc).

    >>> src = RedisStreamSource("redis://127.0.0.1:6379/0?stream=clicks", "scorers", "c1")
    >>> scorer = StreamScorer("churn-api", src, write_feature="churn_scores:score")
    >>> scorer.run(idle_exit_s=5)   # doctest: +SKIP
    """

    def __init__(
        self,
        endpoint: str,
        source: StreamSource,
        *,
        project: str | None = None,
        write_feature: str | None = None,
        routing_key: str | None = None,
        batch: int = 100,
        block_ms: int = 1000,
        refresh_s: float = 1.0,
        reclaim_every_s: float = 5.0,
        prediction_log: PredictionLog | None = None,
        metrics: StreamMetrics | None = None,
        on_batch: Callable[[StreamStats], None] | None = None,
    ) -> None:
        if not isinstance(batch, int) or batch < 1:
            raise Invalid(f"the batch must be >= 1 events; got {batch!r}", field="batch")
        self.endpoint = endpoint
        self.source = source
        self.project = project
        self.write_back = None if write_feature is None else parse_write_feature(write_feature)
        self.routing_key = routing_key
        self.batch = batch
        self.block_ms = block_ms
        self.refresh_s = refresh_s
        self.reclaim_every_s = reclaim_every_s
        self.metrics = metrics or StreamMetrics()
        self.metrics.bind(source.name, endpoint)
        self.on_batch = on_batch
        self.stats = StreamStats()
        self._plog = prediction_log
        self._stop = threading.Event()
        self._answerer: Answerer | None = None
        self._feature_store: Any = None
        self._join_keys: list[str] = []
        self._ts_field = "event_timestamp"

    # -- setup --------------------------------------------------------------------------
    def open(self) -> None:
        """Load the endpoint's deployment (every arm warm) and open the prediction log;
        NotFound if no such deployment, Invalid for a bad write-back feature."""
        from loopstack.serving._answer import Answerer
        from loopstack.serving._client import deployments
        from loopstack.serving._deployed import DeploymentSource
        from loopstack.serving._runtime import ServingRuntime

        store = deployments(project=self.project)
        store.get(self.endpoint)  # NotFound naming the endpoint
        self._deployments = DeploymentSource(store, [self.endpoint])
        runtime = ServingRuntime([])
        self._deployments.poll(runtime)
        if runtime.deployment(self.endpoint) is None or not runtime.ready:
            errors = [e.error for e in runtime.arm_endpoints(self.endpoint).values() if e.error]
            raise NotFound(
                f"the deployment {self.endpoint!r} could not be served: {errors or 'no arm'}",
                field="endpoint",
            )
        self._runtime = runtime
        if self._plog is None:
            self._plog = _open_prediction_log(self.project)
        self._answerer = Answerer(runtime, prediction_log=self._plog, deployments=self._deployments)
        self._polled = time.monotonic()
        if self.write_back is not None:
            self._open_write_back()

    def _open_write_back(self) -> None:
        import loopstack as ls
        from loopstack.features._definitions import FeatureView

        assert self.write_back is not None
        view_name, feature = self.write_back
        fs = ls.FeatureStore()
        view = fs.get_feature_view(view_name)
        if not isinstance(view, FeatureView):
            raise Invalid(f"{view_name!r} is an on-demand view: nothing can be written to it")
        names = [f.name for f in view.schema]
        if names != [feature]:
            raise Invalid(
                f"the write-back view {view_name!r} must hold only the feature {feature!r}; "
                f"it has {', '.join(names)}",
                field="write_feature",
            )
        self._feature_store = fs
        self._join_keys = list(view.join_keys)
        self._ts_field = view.timestamp_field

    @property
    def prediction_log(self) -> PredictionLog:
        """Where the predictions go (open after ``open``)."""
        assert self._plog is not None, "call open() first"
        return self._plog

    def stop(self) -> None:
        """Ask ``run`` to end after the batch under way."""
        self._stop.set()

    # -- the loop -----------------------------------------------------------------------
    def run(
        self, *, idle_exit_s: float | None = None, max_events: int | None = None
    ) -> StreamStats:
        """Score until ``stop()`` (or SIGINT), or until nothing came and nothing was
        pending for ``idle_exit_s``, or ``max_events`` were handled."""
        if self._answerer is None:
            self.open()
        return asyncio.run(self._run(idle_exit_s, max_events))

    async def _run(self, idle_exit_s: float | None, max_events: int | None) -> StreamStats:
        idle_since: float | None = None
        reclaimed_at = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now - self._polled >= self.refresh_s:
                    await asyncio.to_thread(self._deployments.poll, self._runtime)
                    self._polled = now
                events: list[StreamEvent] = []
                if now - reclaimed_at >= self.reclaim_every_s:
                    events = await asyncio.to_thread(self.source.reclaim, self.batch)
                    if not events:
                        reclaimed_at = now
                if not events:
                    block = self.block_ms if idle_exit_s is None else min(self.block_ms, 200)
                    events = await asyncio.to_thread(self.source.read, self.batch, block)
                if events:
                    idle_since = None
                    await self.handle(events)
                elif idle_exit_s is not None:
                    if await asyncio.to_thread(self.source.pending):
                        reclaimed_at = 0.0 if idle_since is None else reclaimed_at
                        idle_since = None
                        await asyncio.sleep(0.1)
                        continue
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= idle_exit_s:
                        break
                handled = self.stats.scored + self.stats.skipped + self.stats.dead_lettered
                if max_events is not None and handled >= max_events:
                    break
        finally:
            assert self._answerer is not None
            await self._answerer.aclose()
        return self.stats

    async def handle(self, events: Sequence[StreamEvent]) -> None:
        """One batch, as the module doc says: skip, score, dead-letter, write back, flush,
        acknowledge."""
        answerer = self._answerer
        assert answerer is not None and self._plog is not None
        ids = [e.id for e in events]
        done = await asyncio.to_thread(self.source.done, ids)
        redelivered = [e for e in events if e.redelivered and e.id not in done]
        if redelivered:
            done |= await asyncio.to_thread(self._already_logged, redelivered)
        todo = [e for e in events if e.id not in done]
        rows: list[tuple[StreamEvent, dict[str, Any]]] = []
        for event in todo:
            try:
                rows.append((event, _record(event)))
            except Invalid as exc:
                await self._dead_letter(event, f"cannot parse the event: {exc}")
        results = await asyncio.gather(
            *(self._predict(event, row) for event, row in rows), return_exceptions=True
        )
        scored: list[tuple[StreamEvent, dict[str, Any], Any]] = []
        for (event, row), result in zip(rows, results, strict=True):
            if isinstance(result, Invalid):
                await self._dead_letter(event, f"does not match the model's signature: {result}")
            elif isinstance(result, BaseException):
                raise result  # NotReady, Overloaded, ...: left pending, reclaimed later
            else:
                scored.append((event, row, result))
        await answerer.drain_shadows()
        if self.write_back is not None and scored:
            await asyncio.to_thread(self._write_back, scored)
        await asyncio.to_thread(self._flush)
        acked = [e.id for e, _, _ in scored] + [i for i in ids if i in done]
        await asyncio.to_thread(self.source.ack, acked)
        now_ms = time.time() * 1000
        for event, _, _ in scored:
            lag = max(0.0, now_ms - event.ts_ms) / 1000
            self.metrics.lag.observe(lag)
            self.stats.last_lag_ms = lag * 1000
        self.metrics.events.labels("scored").inc(len(scored))
        self.metrics.events.labels("skipped").inc(len(done))
        self.stats.scored += len(scored)
        self.stats.skipped += len(done)
        self.stats.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.stats)

    async def _predict(self, event: StreamEvent, row: dict[str, Any]) -> Any:
        assert self._answerer is not None
        key = row.get(self.routing_key) if self.routing_key else None
        answer = await self._answerer.predict(
            self.endpoint,
            [row],
            request_id=f"{self.source.name}:{event.id}",
            routing_key=None if key is None else str(key),
        )
        return answer.outputs

    async def _dead_letter(self, event: StreamEvent, reason: str) -> None:
        await asyncio.to_thread(self.source.dead_letter, event, reason)
        self.metrics.events.labels("dead_lettered").inc()
        self.stats.dead_lettered += 1

    def _already_logged(self, events: Sequence[StreamEvent]) -> set[str]:
        """The ids among ``events`` whose prediction the log already holds."""
        import pyarrow.compute as pc

        assert self._plog is not None
        self._flush()  # this process's own buffered rows count too
        since_ms = min(e.ts_ms for e in events) - _CLOCK_SLACK_MS
        since = dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC)
        table = self._plog.read_predictions(self.endpoint, since=since)
        prefix = f"{self.source.name}:"
        wanted = {prefix + e.id for e in events}
        mask = pc.and_(
            pc.is_in(table["request_id"], value_set=_strings(wanted)),
            pc.invert(table["shadow"].fill_null(False)),
        )
        return {r[len(prefix) :] for r in table.filter(mask)["request_id"].to_pylist()}

    def _write_back(self, scored: Sequence[tuple[StreamEvent, dict[str, Any], Any]]) -> None:
        import pandas as pd

        assert self.write_back is not None
        view, feature = self.write_back
        keep = [(e, r, o) for e, r, o in scored if all(k in r for k in self._join_keys)]
        if not keep:
            return
        frame = pd.DataFrame(
            {
                **{k: [r[k] for _, r, _ in keep] for k in self._join_keys},
                self._ts_field: pd.to_datetime([e.ts_ms for e, _, _ in keep], unit="ms", utc=True),
                feature: [_score(o) for _, _, o in keep],
            }
        )
        self._feature_store.push(view, frame)

    def _flush(self) -> None:
        """Flush the prediction log and make sure nothing is left: StoreUnavailable if the
        store did not take the rows (they stay buffered; nothing is acknowledged)."""
        assert self._plog is not None
        for _ in range(3):
            self._plog.flush(60)
            if not self._plog.buffered:
                return
            time.sleep(0.5)
        raise StoreUnavailable(
            f"the prediction log could not be written ({self._plog.stats.last_error}); "
            "the batch stays pending and is scored again"
        )


def _strings(values: set[str]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(values), pa.string())


def _open_prediction_log(project: str | None) -> PredictionLog:
    """A prediction log over the configured stores' event log, in ``project`` (the
    configured one, else ``default``), flushed by the scorer itself per batch."""
    from loopstack.auth import resolve_project
    from loopstack.config import settings
    from loopstack.serving._prediction_log import PredictionLog
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog

    config = settings()
    stores = open_stores(config)
    project_id = resolve_project(stores.db, project or config.project)
    return PredictionLog(EventLog(stores, project_id=project_id), flush_interval_s=3600)
