"""An asyncio adaptive batcher: concurrent requests share one ``predict_fn`` call.

Callers ``await batcher.submit(item)``. The first item of a batch waits at
most ``max_latency_ms`` for company; the batch leaves sooner once it holds
``max_batch_size`` items. ``predict_fn`` runs in a worker thread, so the event
loop keeps taking requests meanwhile, and items that arrive during a call
make up the next batch. A full queue refuses at once with ``Overloaded``
(503; the server adds ``Retry-After``). An exception in ``predict_fn`` fails
that batch's callers only, each with the exception; a caller that gives up
(its task cancelled) is skipped, and the rest of its batch is unaffected.

With ``dispatch_when_idle`` (what the serving path uses) an item that finds no batch
running and none waiting leaves at once, run from its caller's own task (no dispatcher
round trip), so a lone request pays no latency budget; the
items that arrive while a call runs form the next batch, which leaves when the call
ends and it is full or its oldest item has waited ``max_latency_ms``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from loopstack.errors import Invalid, LoopstackError, Overloaded

__all__ = ["BatchFailed", "Batcher", "BatcherStats"]

In = TypeVar("In")
Out = TypeVar("Out")


class _Observer(Protocol):
    def observe(self, amount: float) -> None: ...


class _Setter(Protocol):
    def set(self, value: float) -> None: ...


class BatchFailed(LoopstackError):
    """``predict_fn`` broke its contract (a result count that differs from the batch's)."""


@dataclass
class BatcherStats:
    """Counters a batcher keeps; read them for metrics or tests."""

    batches: int = 0
    items: int = 0
    failed_batches: int = 0
    rejected: int = 0  # refused because the queue was full
    cancelled: int = 0  # callers that gave up before their batch ran
    queue_depth: int = 0  # items waiting for a batch now
    #: batch size -> how many batches had it
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)


@dataclass
class _Entry(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]
    enqueued: float


class Batcher(Generic[In, Out]):
    """Batches concurrent ``submit`` calls into ``predict_fn(list_of_items) -> list_of_results``.

    >>> batcher = Batcher(lambda xs: model.predict(xs), max_batch_size=32)  # doctest: +SKIP
    >>> await batcher.submit(row)                                          # doctest: +SKIP

    ``batch_size_histogram`` (anything with ``observe``, such as a
    ``prometheus_client.Histogram``) sees each batch's size; ``queue_depth_gauge``
    (anything with ``set``) follows the number of waiting items. One batch
    runs at a time unless ``max_concurrent_batches`` says more. A batcher
    serves the one event loop it is first used in; ``dispatch_when_idle`` sends an item
    that finds nothing running at once (see the module doc).
    """

    def __init__(
        self,
        predict_fn: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch_size: int = 32,
        max_latency_ms: float = 2.0,
        max_queue: int = 1000,
        max_concurrent_batches: int = 1,
        executor: concurrent.futures.Executor | None = None,
        batch_size_histogram: _Observer | None = None,
        queue_depth_gauge: _Setter | None = None,
        dispatch_when_idle: bool = False,
    ) -> None:
        for name, value in (
            ("max_batch_size", max_batch_size),
            ("max_queue", max_queue),
            ("max_concurrent_batches", max_concurrent_batches),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise Invalid(f"the {name!r} must be an integer >= 1; got {value!r}", field=name)
        if not max_latency_ms >= 0:
            raise Invalid(
                f"the 'max_latency_ms' must be >= 0; got {max_latency_ms!r}",
                field="max_latency_ms",
            )
        self.predict_fn = predict_fn
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000
        self.max_queue = max_queue
        self.max_concurrent_batches = max_concurrent_batches
        self.executor = executor
        self.dispatch_when_idle = dispatch_when_idle
        self.stats = BatcherStats()
        self._histogram = batch_size_histogram
        self._gauge = queue_depth_gauge
        self._pending: collections.deque[_Entry[In, Out]] = collections.deque()
        self._arrived = asyncio.Event()  # set on each submit: wakes the dispatcher
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False
        self._inline = 0  # idle calls run from their caller's task (dispatch_when_idle)
        self._inline_done = asyncio.Event()

    # -- callers ------------------------------------------------------------------------
    async def submit(self, item: In) -> Out:
        """This item's result, once the batch it joined has run; ``Overloaded`` at once
        if ``max_queue`` items already wait (or the batcher is closed)."""
        if self._closed:
            raise Overloaded("the batcher is shutting down and takes no new requests")
        if len(self._pending) >= self.max_queue:
            self.stats.rejected += 1
            raise Overloaded(
                f"the prediction queue is full ({self.max_queue} requests waiting); "
                "try again shortly"
            )
        if self.dispatch_when_idle and not (self._pending or self._running or self._inline):
            return await self._run_inline(item)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._pending.append(_Entry(item, future, loop.time()))
        self._depth_changed()
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._dispatch())
        try:
            return await future
        except asyncio.CancelledError:
            if not future.done():  # our caller gave up, not the batch
                future.cancel()
            raise

    async def _run_inline(self, item: In) -> Out:
        """A batch of one run from the caller's own task: nothing was running or waiting,
        so the dispatcher's two task switches are saved; what arrives meanwhile waits."""
        self._inline += 1
        self._count(1)
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.predict_fn, [item])
            if len(results) != 1:
                raise BatchFailed(
                    f"predict_fn must return one result per item: expected 1, got {len(results)}"
                )
        except Exception:
            self.stats.failed_batches += 1
            raise
        finally:
            self._inline -= 1
            if not self._inline:
                self._inline_done.set()
            if self._pending:
                self._arrived.set()
        return results[0]

    def _count(self, size: int) -> None:
        self.stats.batches += 1
        self.stats.items += size
        self.stats.batch_sizes[size] += 1
        if self._histogram is not None:
            self._histogram.observe(size)

    async def _no_inline_call(self) -> None:
        while self._inline:
            self._inline_done.clear()
            await self._inline_done.wait()

    async def close(self) -> None:
        """Refuse new items, run the ones already waiting, and stop the dispatcher."""
        self._closed = True
        self._arrived.set()
        await self._no_inline_call()
        if self._worker is not None:
            await self._worker
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    # -- the dispatcher -----------------------------------------------------------------
    def _depth_changed(self) -> None:
        self.stats.queue_depth = len(self._pending)
        if self._gauge is not None:
            self._gauge.set(len(self._pending))

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.max_concurrent_batches)
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            deadline = self._pending[0].enqueued + self.max_latency_s
            idle = self.dispatch_when_idle and not (self._running or self._inline)
            while not idle and len(self._pending) < self.max_batch_size and not self._closed:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            await self._no_inline_call()  # a call made from a caller's task runs alone too
            await slots.acquire()
            batch = self._take()
            if not batch:
                slots.release()
                continue
            task = loop.create_task(self._run(batch))
            self._running.add(task)

            def finished(done: asyncio.Task[None]) -> None:
                self._running.discard(done)
                slots.release()

            task.add_done_callback(finished)

    def _take(self) -> list[_Entry[In, Out]]:
        batch: list[_Entry[In, Out]] = []
        while self._pending and len(batch) < self.max_batch_size:
            entry = self._pending.popleft()
            if entry.future.done():  # cancelled while it waited
                self.stats.cancelled += 1
            else:
                batch.append(entry)
        self._depth_changed()
        return batch

    async def _run(self, batch: list[_Entry[In, Out]]) -> None:
        size = len(batch)
        self._count(size)
        items = [e.item for e in batch]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.predict_fn, items)
            if len(results) != size:
                raise BatchFailed(
                    f"predict_fn must return one result per item: expected {size}, "
                    f"got {len(results)}"
                )
        except Exception as exc:  # noqa: BLE001 - it belongs to this batch's callers
            self.stats.failed_batches += 1
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        for entry, result in zip(batch, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

    def __repr__(self) -> str:
        return (
            f"Batcher(max_batch_size={self.max_batch_size}, "
            f"max_latency_ms={self.max_latency_s * 1000:g}, max_queue={self.max_queue})"
        )
