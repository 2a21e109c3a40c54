"""Pipelines' native REST API: /api/v1/pipelines (read only).

Runs are written where they execute (``loopstack pipelines run`` on a machine with the
metadata store); through the server they are listed, shown, drawn and costed. Reading is
a viewer's (``_route_roles.py``), in the caller's project.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from loopstack.errors import Invalid, NotFound
from loopstack.pipelines._graph import render_stored, stored_to_mermaid
from loopstack.pipelines._rest import cost_to_dict, run_to_dict
from loopstack.pipelines._store import CostRow, RunRecord, SqlPipelineStore
from loopstack.server._security import authorize, principal_of, project_of

router = APIRouter(
    prefix="/api/v1/pipelines", tags=["pipelines"], dependencies=[Depends(authorize)]
)

#: a pipeline run's id as the path names it (a uuid's hex; anything longer is no run)
RunId = Annotated[str, Path(min_length=1, max_length=64)]


def pipeline_store(request: Request) -> SqlPipelineStore:
    """The pipeline runs of the caller's project."""
    return SqlPipelineStore(
        request.app.state.stores, project_of(request), actor=principal_of(request).user
    )


def _with_cost(record: RunRecord) -> dict:
    """A run as JSON with ``cost``: what its steps cost (``CostRow.of_run``)."""
    return {**run_to_dict(record), "cost": cost_to_dict(CostRow.of_run(record))}


def _experiment_of(request: Request, record: RunRecord) -> str | None:
    """The experiment of the run's tracked (parent) run, where its steps' runs are too;
    None when that run is gone."""
    from loopstack.server.routes._deps import tracking_store

    if not record.tracking_run_id:
        return None
    try:
        return str(tracking_store(request).get_run(record.tracking_run_id).info.experiment_id)
    except NotFound:
        return None


@router.get("/runs", name="pipelines_runs")
def list_runs(
    pipeline: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    store: SqlPipelineStore = Depends(pipeline_store),
) -> dict:
    """The project's pipeline runs, newest first (of one ``pipeline``), with their steps
    and ``cost`` (what their steps cost)."""
    return {"runs": [_with_cost(r) for r in store.list_runs(pipeline, limit)]}


@router.get("/runs/{pipeline_run}", name="pipelines_run")
def get_run(
    pipeline_run: RunId, request: Request, store: SqlPipelineStore = Depends(pipeline_store)
) -> dict:
    """One pipeline run: each step's status, tries, wall and CPU time, peak memory, the
    run it was cached from and its error; ``cost`` (what its steps cost) and
    ``experiment_id`` (where its tracked runs are, null if they are gone)."""
    record = store.get_run(pipeline_run)
    return {**_with_cost(record), "experiment_id": _experiment_of(request, record)}


@router.get("/runs/{pipeline_run}/graph", name="pipelines_run_graph")
def run_graph(
    pipeline_run: RunId,
    width: Annotated[int, Query(ge=20, le=1000)] = 80,
    store: SqlPipelineStore = Depends(pipeline_store),
) -> dict:
    """The graph the run ran, as stored (JSON), as text (at most ``width`` columns) and as
    a Mermaid flowchart, each step with its status in the run."""
    record = store.get_run(pipeline_run)
    statuses = {name: s.status for name, s in record.steps.items()}
    return {
        "run_uuid": record.run_uuid,
        "graph": record.graph,
        "text": render_stored(record.graph, statuses, width),
        "mermaid": stored_to_mermaid(record.graph, statuses),
    }


@router.get("/cost", name="pipelines_cost")
def cost(
    request: Request,
    by: str = "pipeline",
    since: Annotated[
        float | None, Query(ge=0, le=1e11, allow_inf_nan=False, description="epoch seconds")
    ] = None,
    store: SqlPipelineStore = Depends(pipeline_store),
) -> dict:
    """What step runs cost per pipeline of the project (``by=pipeline``) or per project
    (``by=project``: the projects the caller can see), of runs created since ``since``."""
    if by not in ("pipeline", "project"):
        raise Invalid(f"'by' must be 'pipeline' or 'project'; got {by[:80]!r} instead", field="by")
    rows = store.cost(by, None if since is None else int(since * 1000))
    if by == "project" and request.app.state.config.auth:
        from loopstack.auth._projects import _usable

        principal = principal_of(request)
        seen = {p.name for p in _usable(store.db, principal.user, principal.project_id)}
        rows = [r for r in rows if r.key in seen]
    return {"by": by, "rows": [cost_to_dict(r) for r in rows]}
