"""The module-level verbs: run by entrypoint, resume, look runs up, what they cost."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopstack.errors import Conflict, Invalid
from loopstack.pipelines._pipeline import load_entrypoint
from loopstack.pipelines._rest import RestPipelineRuns
from loopstack.pipelines._results import PipelineRun
from loopstack.pipelines._runner import StepEvents, run_pipeline
from loopstack.pipelines._store import CostRow, SqlPipelineStore

if TYPE_CHECKING:
    from loopstack.store import Stores

__all__ = ["cost", "get_run", "list_runs", "resume", "run_entrypoint"]


def _store() -> SqlPipelineStore:
    from loopstack.auth import project_in_use
    from loopstack.config import settings
    from loopstack.store import open_stores

    config = settings()
    stores = open_stores(config)
    return SqlPipelineStore(stores, project_in_use(stores.db, config), actor=config.actor)


def _runs() -> tuple[SqlPipelineStore | RestPipelineRuns, Stores | None]:
    """Where runs are read: through the server for an http(s) tracking URI (no stores:
    outputs are not loaded), else the metadata store."""
    from loopstack.auth._open import open_in_project

    Runs = tuple[SqlPipelineStore | RestPipelineRuns, "Stores | None"]

    def remote(client: Any) -> Runs:
        return RestPipelineRuns(client), None

    def local(stores: Stores, actor: str, pid: int) -> Runs:
        return SqlPipelineStore(stores, pid, actor=actor), stores

    return open_in_project(remote, local)


def run_entrypoint(
    entrypoint: str,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str = "local",
    address: str | None = None,
    max_workers: int | None = None,
    on_event: StepEvents | None = None,
) -> PipelineRun:
    """Import the pipeline ``module:name`` (or ``file.py:name``) and run it with ``params``.

    ``on_event(step, status, message)`` hears each step's progress as it happens.

    >>> ls.pipelines.run_entrypoint("pkg.flows:training", {"rows": 10})
    """
    pipe = load_entrypoint(entrypoint)
    return run_pipeline(
        pipe,
        dict(params or {}),
        executor=executor,
        address=address,
        max_workers=max_workers,
        on_event=on_event,
    )


def resume(
    run_uuid: str,
    *,
    executor: str | None = None,
    address: str | None = None,
    max_workers: int | None = None,
    on_event: StepEvents | None = None,
) -> PipelineRun:
    """Run what a failed (or killed) run did not finish; its steps that FINISHED or were
    CACHED are reused. Same run id, ``attempt`` one more."""
    store = _store()
    record = store.get_run(run_uuid)
    if record.status == "FINISHED":
        raise Conflict(f"pipeline run {run_uuid} FINISHED already; there is nothing to resume")
    if not record.entrypoint:
        raise Invalid(
            f"pipeline run {run_uuid} has no entrypoint (its pipeline was not bound to a "
            f"module-level name), so it cannot be re-imported to resume"
        )
    pipe = load_entrypoint(record.entrypoint)
    return run_pipeline(
        pipe,
        record.params,
        executor=executor or record.executor,
        address=address,
        max_workers=max_workers,
        resume=run_uuid,
        on_event=on_event,
    )


def get_run(run_uuid: str) -> PipelineRun:
    """The pipeline run ``run_uuid`` with its steps; NotFound if there is none (through a
    server too: its ``output()`` then needs the artifact store, which is not opened)."""
    store, stores = _runs()
    return PipelineRun(store.get_run(run_uuid), stores)


def list_runs(pipeline: str | None = None, limit: int = 50) -> list[PipelineRun]:
    """The project's latest pipeline runs first (of ``pipeline`` only, if given); their
    ``steps`` are listed (their status, times and cache hits)."""
    store, stores = _runs()
    return [PipelineRun(r, stores) for r in store.list_runs(pipeline, limit)]


def cost(by: str = "pipeline", since: float | dt.datetime | None = None) -> list[CostRow]:
    """Runs, steps, cached steps, wall and CPU seconds and the peak memory of step runs,
    per pipeline of this project (``by="pipeline"``) or per project (``by="project"``),
    of the runs created at or after ``since`` (epoch seconds or a datetime)."""
    if by not in ("pipeline", "project"):
        raise Invalid(f"the 'by' parameter must be 'pipeline' or 'project'; got {by!r} instead")
    since_ms = None
    if isinstance(since, dt.datetime):
        since_ms = int(since.timestamp() * 1000)
    elif isinstance(since, (int, float)) and not isinstance(since, bool):
        since_ms = int(since * 1000)
    elif since is not None:
        raise Invalid(f"'since' must be epoch seconds or a datetime; got {since!r} instead")
    return _runs()[0].cost(by, since_ms)
