"""Async inference on the serving app: queue a predict request, read its job.

``POST /endpoints/{name}/jobs`` takes the body the predict route takes (``records``,
``columns`` or ``instances``, ``routing_key``?) plus ``callback_url``? and
``idempotency_key``? (or the ``Idempotency-Key`` header); it checks the endpoint (404)
and the input against the model's signature (422) before queueing, then answers 202
with the job at once (``Location`` names it). ``GET /endpoints/{name}/jobs/{id}`` gives
the job: ``status`` (queued, running, succeeded, failed), ``tries``, its timestamps,
and ``result`` (the predict route's answer, model version included) or ``error``. The
serving process's job workers (``server._job_workers``) score the jobs.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loopstack.errors import Invalid, NotFound
from loopstack.server.routes.serving import model_input, routing_key
from loopstack.serving import Answerer
from loopstack.serving._oip import json_object
from loopstack.serving.jobs import JobQueue

__all__ = ["IDEMPOTENCY_HEADER", "ROLES", "router"]

router = APIRouter(tags=["serving"])
ROLES: dict[str, str | None] = {"serving_job_submit": "viewer", "serving_job_get": "viewer"}
IDEMPOTENCY_HEADER = "Idempotency-Key"


def _queue(request: Request) -> JobQueue:
    queue: JobQueue | None = getattr(request.app.state, "job_queue", None)
    if queue is None:
        raise NotFound(
            "this server takes no async jobs: start it with a job queue "
            "(loopstack serve --async-workers N --queue sql|redis://...)"
        )
    return queue


@router.post("/endpoints/{name}/jobs", name="serving_job_submit", status_code=202)
async def submit_job(request: Request, name: str) -> JSONResponse:
    """Queue a predict request for the endpoint ``name``; 202 with the job's id at once."""
    answerer: Answerer = request.app.state.answerer
    answerer.runtime.get(name)  # an unknown endpoint is 404 before the body is read
    queue = _queue(request)
    what = "an async job is a JSON object with one of ['records', 'columns', 'instances']"
    doc = json_object(await request.body(), what)
    callback_url = doc.pop("callback_url", None)
    key: Any = request.headers.get(IDEMPOTENCY_HEADER, doc.pop("idempotency_key", None))
    if key is not None and not isinstance(key, str):
        raise Invalid(f"'idempotency_key' must be text; got {key!r}", field="idempotency_key")
    routed = routing_key(request, doc.get("routing_key"))
    if routed is not None:
        doc["routing_key"] = routed
    await answerer.check(name, model_input(doc), routing_key=routed)
    job = await anyio.to_thread.run_sync(
        lambda: queue.enqueue(name, doc, idempotency_key=key, callback_url=callback_url)
    )
    return JSONResponse(
        job.to_dict(),
        status_code=202,
        headers={"Location": f"/endpoints/{name}/jobs/{job.job_id}"},
    )


@router.get("/endpoints/{name}/jobs/{job_id}", name="serving_job_get")
async def get_job(request: Request, name: str, job_id: str) -> dict[str, Any]:
    """The job: its status, tries, timestamps and result (or last error)."""
    queue = _queue(request)
    job = await anyio.to_thread.run_sync(queue.get, job_id)
    if job.endpoint != name:
        raise NotFound(f"no job {job_id!r} on the endpoint {name!r}")
    return job.to_dict()
