"""The serving process's async job workers: claim a job, score it, store the answer.

Each worker is a task on the serving app's event loop (started and stopped by its
lifespan). It claims a job of an endpoint this process serves under a lease, renews the
lease while the model answers, and scores the job through the app's ``Answerer`` (the
endpoint's current deployment with its routing policy, batching, the prediction log),
so a job's result is the predict route's answer. Input the model refuses fails the job
at once; any other error is retried until the job's ``max_tries``. A finished job with a
``callback_url`` has its document POSTed there (a few tries with backoff); what that did
is noted on the job and never changes its status. One worker also expires the results
whose TTL ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Any

import anyio.to_thread
import httpx

from loopstack.errors import Invalid, LoopstackError, NotFound
from loopstack.server.routes.serving import answer_document, model_input
from loopstack.serving import Answerer
from loopstack.serving.jobs import FINISHED, Job, JobQueue

__all__ = ["CALLBACK_TRIES", "JobWorkers"]

log = logging.getLogger("loopstack.serving.jobs")
CALLBACK_TRIES = 3
_EXPIRE_EVERY_S = 60.0


class JobWorkers:
    """``count`` workers scoring ``queue``'s jobs through ``answerer``."""

    def __init__(
        self,
        queue: JobQueue,
        answerer: Answerer,
        count: int,
        *,
        lease_s: float = 30.0,
        poll_s: float = 0.2,
        callback_backoff_s: float = 0.5,
    ) -> None:
        if not isinstance(count, int) or count < 0:
            raise Invalid(f"the number of async workers is a whole number >= 0; got {count!r}")
        self.queue, self.answerer, self.count = queue, answerer, count
        self.lease_s, self.poll_s, self.callback_backoff_s = lease_s, poll_s, callback_backoff_s
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._base = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def start(self) -> None:
        """Start the workers on the running event loop."""
        self._stop = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._run(f"{self._base}:{i}", i == 0), name=f"job-worker-{i}")
            for i in range(self.count)
        ]

    async def stop(self) -> None:
        """Stop claiming; a job being scored is finished (or its lease lapses)."""
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _claim(self, worker: str) -> Job | None:
        served = [e.name for e in self.answerer.runtime.endpoints]
        return self.queue.claim(worker, self.lease_s, endpoints=served)

    async def _run(self, worker: str, expires: bool) -> None:
        loop = asyncio.get_running_loop()
        next_expiry = loop.time()
        while not self._stop.is_set():
            try:
                if expires and loop.time() >= next_expiry:
                    next_expiry = loop.time() + _EXPIRE_EVERY_S
                    await anyio.to_thread.run_sync(lambda: self.queue.expire())
                job = await anyio.to_thread.run_sync(self._claim, worker)
            except Exception:  # noqa: BLE001 - a queue that is away now: try again later
                log.exception("claiming an async job failed")
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_s)
                continue
            await self._score(worker, job)

    async def _score(self, worker: str, job: Job) -> None:
        beat = asyncio.create_task(self._heartbeat(worker, job.job_id))
        finished: Job | None = None
        try:
            answer = await self.answerer.predict(
                job.endpoint,
                model_input(job.payload),
                request_id=job.job_id,
                routing_key=job.payload.get("routing_key"),
            )
            result = answer_document(answer)
            if await anyio.to_thread.run_sync(
                lambda: self.queue.complete(job.job_id, worker, result)
            ):
                finished = await anyio.to_thread.run_sync(self.queue.get, job.job_id)
        except (Invalid, NotFound) as exc:  # this input will never score: no retry
            finished = await self._fail(worker, job, exc, retry=False)
        except Exception as exc:  # noqa: BLE001 - loading, overloaded, the model failed
            finished = await self._fail(worker, job, exc, retry=True)
        finally:
            beat.cancel()
        if finished is not None and finished.status in FINISHED and finished.callback_url:
            await self._callback(finished)

    async def _fail(self, worker: str, job: Job, exc: Exception, *, retry: bool) -> Job | None:
        error = str(exc) if isinstance(exc, LoopstackError) else f"{type(exc).__name__}: {exc}"
        try:
            return await anyio.to_thread.run_sync(
                lambda: self.queue.fail(job.job_id, worker, error, retry=retry)
            )
        except Exception:  # noqa: BLE001 - its lease lapses and another worker retries it
            log.exception("recording job %s's failure failed", job.job_id)
            return None

    async def _heartbeat(self, worker: str, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                held = await anyio.to_thread.run_sync(
                    lambda: self.queue.heartbeat(job_id, worker, self.lease_s)
                )
            except Exception:  # noqa: BLE001 - the next beat tries again
                log.exception("renewing job %s's lease failed", job_id)
                continue
            if not held:
                return

    async def _callback(self, job: Job) -> None:
        """POST the finished job to its callback URL; note the outcome on the job."""
        assert job.callback_url is not None
        outcome: dict[str, Any] = {"status": "failed", "attempts": 0}
        async with httpx.AsyncClient(timeout=10.0) as client:
            for attempt in range(1, CALLBACK_TRIES + 1):
                outcome["attempts"] = attempt
                try:
                    answer = await client.post(job.callback_url, json=job.to_dict())
                    if answer.status_code < 300:
                        outcome = {"status": "delivered", "attempts": attempt}
                        break
                    outcome["error"] = f"the callback answered HTTP {answer.status_code}"
                except httpx.HTTPError as exc:
                    outcome["error"] = f"{type(exc).__name__}: {exc}"
                if attempt < CALLBACK_TRIES:
                    await asyncio.sleep(self.callback_backoff_s * 2 ** (attempt - 1))
        try:
            await anyio.to_thread.run_sync(lambda: self.queue.note_callback(job.job_id, outcome))
        except Exception:  # noqa: BLE001 - the job itself is finished either way
            log.exception("noting job %s's callback failed", job.job_id)
