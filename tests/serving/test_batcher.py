"""The adaptive batcher: batching, ordering, refusal, errors and cancellation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import prometheus_client
import pytest

from loopstack.errors import Invalid, Overloaded
from loopstack.serving import Batcher, BatchFailed

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a test coroutine with an overall bound, so a hang fails instead of stalling."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), 20)

    return asyncio.run(bounded())


class Model:
    """A predict_fn that records its batches; doubles each item; can be held mid-call."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.entered.set()
        self.release.wait(20)
        if any(i < 0 for i in items):
            raise ValueError(f"negative input in {items}")
        return [2 * i for i in items]


async def _until(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, 20)


def test_concurrent_submits_share_few_calls_and_each_gets_its_own_result() -> None:
    model = Model()
    registry = prometheus_client.CollectorRegistry()
    hist = prometheus_client.Histogram("bs", "batch size", registry=registry, buckets=(1, 8, 16))
    gauge = prometheus_client.Gauge("qd", "queue depth", registry=registry)

    async def main() -> list[int]:
        batcher = Batcher(
            model,
            max_batch_size=16,
            max_latency_ms=50,
            batch_size_histogram=hist,
            queue_depth_gauge=gauge,
        )
        return await asyncio.gather(*(batcher.submit(i) for i in range(64)))

    assert run(main) == [2 * i for i in range(64)]
    assert len(model.calls) == 4 and all(len(c) <= 16 for c in model.calls)
    assert [i for call in model.calls for i in call] == list(range(64))  # order kept
    assert registry.get_sample_value("bs_count") == 4
    assert registry.get_sample_value("bs_sum") == 64
    assert registry.get_sample_value("qd") == 0


def test_a_lone_submit_goes_alone_and_a_full_batch_does_not_wait() -> None:
    model = Model()

    async def main() -> None:
        alone = Batcher(model, max_batch_size=32, max_latency_ms=5)
        assert await alone.submit(1) == 2
        assert await alone.submit(2) == 4
        # a budget of a minute: the batch leaves because it is full, not because time ran out
        patient = Batcher(model, max_batch_size=4, max_latency_ms=60_000)
        assert await asyncio.gather(*(patient.submit(i) for i in (5, 6, 7, 8))) == [10, 12, 14, 16]
        assert patient.stats.batch_sizes == {4: 1}

    run(main)
    assert model.calls == [[1], [2], [5, 6, 7, 8]]


def test_a_full_queue_refuses_at_once() -> None:
    model = Model(hold=True)

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=1, max_latency_ms=0, max_queue=2)
        first = asyncio.create_task(batcher.submit(1))
        await _until(model.entered)  # the first batch occupies the model
        waiting = [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0)
        assert batcher.stats.queue_depth == 2
        with pytest.raises(Overloaded, match="queue is full"):
            await batcher.submit(4)
        assert batcher.stats.rejected == 1
        model.release.set()
        assert await asyncio.gather(first, *waiting) == [2, 4, 6]
        await batcher.close()
        with pytest.raises(Overloaded, match="shutting down"):
            await batcher.submit(5)

    run(main)
    assert model.calls == [[1], [2], [3]]


def test_a_failing_batch_fails_only_its_own_callers() -> None:
    model = Model()

    async def main() -> list[object]:
        batcher = Batcher(model, max_batch_size=2, max_latency_ms=50)
        return await asyncio.gather(
            *(batcher.submit(i) for i in (1, -1, 3, 4)), return_exceptions=True
        )

    first, second, third, fourth = run(main)
    assert isinstance(first, ValueError) and isinstance(second, ValueError)
    assert "negative input in [1, -1]" in str(first)
    assert (third, fourth) == (6, 8)


def test_a_wrong_result_count_is_the_batch_s_error() -> None:
    async def main() -> None:
        batcher = Batcher(lambda xs: xs[:-1], max_batch_size=3, max_latency_ms=50)
        outcomes = await asyncio.gather(
            *(batcher.submit(i) for i in range(3)), return_exceptions=True
        )
        assert all(isinstance(o, BatchFailed) for o in outcomes)
        assert "expected 3, got 2" in str(outcomes[0])
        assert batcher.stats.failed_batches == 1

    run(main)


def test_cancelled_callers_do_not_break_their_batch() -> None:
    model = Model(hold=True)

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=2, max_latency_ms=50)
        in_flight = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
        await _until(model.entered)
        queued = [asyncio.create_task(batcher.submit(i)) for i in (3, 4, 5)]
        await asyncio.sleep(0)
        in_flight[0].cancel()  # gives up while its batch runs
        queued[1].cancel()  # gives up before its batch forms
        model.release.set()
        assert await in_flight[1] == 4
        assert await queued[0] == 6 and await queued[2] == 10
        for task in (in_flight[0], queued[1]):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert batcher.stats.cancelled == 1

    run(main)
    assert model.calls == [[1, 2], [3, 5]]


@pytest.mark.parametrize(
    "kwargs", [{"max_batch_size": 0}, {"max_queue": -1}, {"max_latency_ms": -1.0}]
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(Invalid, match=next(iter(kwargs))):
        Batcher(lambda xs: xs, **kwargs)  # type: ignore[arg-type]


def test_close_runs_what_waits_then_refuses() -> None:
    model = Model()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=8, max_latency_ms=60_000)
        waiting = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
        await asyncio.sleep(0)
        await batcher.close()  # does not wait out the minute-long budget
        assert [await t for t in waiting] == [0, 2, 4]
        with pytest.raises(Overloaded):
            await batcher.submit(9)

    run(main)
    assert model.calls == [[0, 1, 2]]


def test_when_idle_a_call_goes_at_once_and_arrivals_meanwhile_form_the_next_batch() -> None:
    model = Model(hold=True)

    async def main() -> list[int]:
        batcher = Batcher(model, max_batch_size=8, max_latency_ms=0, dispatch_when_idle=True)
        first = asyncio.ensure_future(batcher.submit(1))
        await _until(model.entered)  # the lone item went at once, on a 0 ms budget anyway
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0.05)
        assert model.calls == [[1]]  # nothing runs beside the held call
        model.release.set()
        answers = await asyncio.gather(first, *rest)
        await batcher.close()
        assert dict(batcher.stats.batch_sizes) == {1: 1, 3: 1}
        return answers

    assert run(main) == [2, 4, 6, 8]
    assert model.calls == [[1], [2, 3, 4]]
