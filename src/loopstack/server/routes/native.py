"""loopstack's own REST API under /api/v1: what ``RestTrackingStore`` speaks."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from loopstack.auth import Role, role_of
from loopstack.errors import Invalid, NotFound
from loopstack.server._boundary import WholeNumber
from loopstack.server._security import PROJECT_HEADER, authorize, principal_of, project_of
from loopstack.server.routes import _mlflow_render as render
from loopstack.server.routes._deps import tracking_store
from loopstack.store import audit
from loopstack.store.artifacts import sanitize_path
from loopstack.tracking._entities import (
    DatasetInput,
    Metric,
    metric_value_from_json,
    metric_value_to_json,
)
from loopstack.tracking._sql_store import SqlTrackingStore

router = APIRouter(prefix="/api/v1", tags=["native"], dependencies=[Depends(authorize)])
#: what one metric-histories request takes: runs, keys, points per key
_HISTORY_RUNS, _HISTORY_KEYS, _MAX_POINTS = 100, 100, 2500


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentCreate(_Body):
    name: str
    artifact_location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class TagSet(_Body):
    key: str
    value: str


class RunCreate(_Body):
    experiment_id: str = "0"
    run_name: str | None = None
    start_time: WholeNumber | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    user_id: str | None = None
    params: dict[str, str] = Field(default_factory=dict)


class RunUpdate(_Body):
    status: str | None = None
    end_time: WholeNumber | None = None
    run_name: str | None = None


class MetricPoint(_Body):
    key: str
    value: Any  # a number or "NaN"/"Infinity"/"-Infinity"; validated by the store
    step: WholeNumber = 0
    timestamp: WholeNumber


class Batch(_Body):
    metrics: list[MetricPoint] = Field(default_factory=list)
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


class DatasetBody(_Body):
    name: str
    digest: str
    source_type: str
    source: str
    schema_: str | None = Field(default=None, alias="schema")
    profile: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class Inputs(_Body):
    datasets: list[DatasetBody]


class RunSearch(_Body):
    experiment_ids: list[str]
    filter: str = ""
    view: str = "active"
    max_results: WholeNumber = 1000
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class MetricHistories(_Body):
    run_ids: list[str]
    keys: list[str] | None = None
    max_points: WholeNumber = _MAX_POINTS


Store = SqlTrackingStore


# -- experiments ----------------------------------------------------------------------
@router.post("/experiments", name="experiments_create")
def create_experiment(body: ExperimentCreate, store: Store = Depends(tracking_store)) -> dict:
    return {"experiment_id": store.create_experiment(body.name, body.artifact_location, body.tags)}


@router.get("/experiments", name="experiments_list")
def list_experiments(
    view: str = "active",
    name_like: str | None = None,
    max_results: int = Query(1000, ge=1, le=50_000),
    store: Store = Depends(tracking_store),
) -> dict:
    exps = store.search_experiments(view=view, name_like=name_like, max_results=max_results)
    return {"experiments": [asdict(e) for e in exps]}


@router.get("/experiments/by-name/{name:path}", name="experiments_get_by_name")
def get_experiment_by_name(name: str, store: Store = Depends(tracking_store)) -> dict:
    exp = store.get_experiment_by_name(name)
    if exp is None:
        raise NotFound(f"no experiment named {name!r}")
    return asdict(exp)


@router.get("/experiments/{experiment_id}", name="experiments_get")
def get_experiment(experiment_id: str, store: Store = Depends(tracking_store)) -> dict:
    return asdict(store.get_experiment(experiment_id))


@router.post("/experiments/{experiment_id}/tags", name="experiments_set_tag")
def set_experiment_tag(
    experiment_id: str, body: TagSet, store: Store = Depends(tracking_store)
) -> dict:
    store.set_experiment_tag(experiment_id, body.key, body.value)
    return {}


@router.delete("/experiments/{experiment_id}", name="experiments_delete")
def delete_experiment(experiment_id: str, store: Store = Depends(tracking_store)) -> dict:
    store.delete_experiment(experiment_id)
    return {}


# -- runs -----------------------------------------------------------------------------
@router.post("/runs", name="runs_create")
def create_run(body: RunCreate, store: Store = Depends(tracking_store)) -> dict:
    run = store.create_run(
        body.experiment_id,
        run_name=body.run_name,
        start_time=body.start_time,
        tags=body.tags,
        user_id=body.user_id,
        params=body.params,
    )
    return run.to_dict()


@router.post("/runs/search", name="runs_search")
def search_runs(body: RunSearch, store: Store = Depends(tracking_store)) -> dict:
    runs, token = store.search_runs(
        body.experiment_ids,
        filter_string=body.filter,
        view=body.view,
        max_results=body.max_results,
        order_by=body.order_by,
        page_token=body.page_token,
    )
    return {"runs": [r.to_dict() for r in runs], "next_page_token": token}


@router.get("/runs/{run_id}", name="runs_get")
def get_run(run_id: str, store: Store = Depends(tracking_store)) -> dict:
    return store.get_run(run_id).to_dict()


@router.patch("/runs/{run_id}", name="runs_update")
def update_run(run_id: str, body: RunUpdate, store: Store = Depends(tracking_store)) -> dict:
    return store.update_run(
        run_id, status=body.status, end_time=body.end_time, run_name=body.run_name
    ).to_dict()


@router.delete("/runs/{run_id}", name="runs_delete")
def delete_run(run_id: str, store: Store = Depends(tracking_store)) -> dict:
    store.delete_run(run_id)
    return {}


@router.post("/runs/{run_id}/restore", name="runs_restore")
def restore_run(run_id: str, store: Store = Depends(tracking_store)) -> dict:
    store.restore_run(run_id)
    return {}


@router.post("/runs/{run_id}/batch", name="runs_log_batch")
def log_batch(run_id: str, body: Batch, store: Store = Depends(tracking_store)) -> dict:
    store.log_batch(
        run_id,
        metrics=[
            Metric(m.key, metric_value_from_json(m.value), m.step, m.timestamp)
            for m in body.metrics
        ],
        params=body.params,
        tags=body.tags,
    )
    return {}


@router.delete("/runs/{run_id}/tags/{key:path}", name="runs_delete_tag")
def delete_tag(run_id: str, key: str, store: Store = Depends(tracking_store)) -> dict:
    store.delete_tag(run_id, key)
    return {}


@router.post("/runs/{run_id}/inputs", name="runs_log_inputs")
def log_inputs(run_id: str, body: Inputs, store: Store = Depends(tracking_store)) -> dict:
    store.log_inputs(
        run_id,
        [
            DatasetInput(d.name, d.digest, d.source_type, d.source, d.schema_, d.profile, d.tags)
            for d in body.datasets
        ],
    )
    return {}


@router.get("/runs/{run_id}/metrics/{key:path}", name="runs_metric_history")
def metric_history(run_id: str, key: str, store: Store = Depends(tracking_store)) -> dict:
    return {
        "metrics": [
            {**asdict(m), "value": metric_value_to_json(m.value)}
            for m in store.get_metric_history(run_id, key)
        ]
    }


@router.post("/runs/metric-histories", name="runs_metric_histories")
def metric_histories(body: MetricHistories, store: Store = Depends(tracking_store)) -> dict:
    """Several metrics' histories in several runs at once (a comparison's charts): by key,
    then run, ``[step, value]`` pairs; ``keys`` omitted: the runs' first 20 keys in order.
    Each key keeps at most ``max_points`` steps, evenly spread, first and last included."""
    if not 1 <= len(body.run_ids) <= _HISTORY_RUNS:
        raise Invalid(
            f"expected 1 to {_HISTORY_RUNS} run_ids; got {len(body.run_ids)}", field="run_ids"
        )
    if body.keys is not None and not 1 <= len(body.keys) <= _HISTORY_KEYS:
        raise Invalid(f"expected 1 to {_HISTORY_KEYS} keys; got {len(body.keys)}", field="keys")
    if not 1 <= body.max_points <= _MAX_POINTS:
        raise Invalid(
            f"max_points must be 1 to {_MAX_POINTS}; got {body.max_points}", field="max_points"
        )
    out: dict[str, dict[str, list[list[Any]]]] = {}
    for key, by_run in store.get_metrics_histories(body.run_ids, body.keys).items():
        steps = sorted({m.step for points in by_run.values() for m in points})
        keep = render.sample_steps(steps, body.max_points)
        out[key] = {
            rid: [[m.step, metric_value_to_json(m.value)] for m in points if m.step in keep]
            for rid, points in by_run.items()
        }
    return {"histories": out}


# -- artifacts ------------------------------------------------------------------------
@router.get("/runs/{run_id}/artifacts", name="artifacts_list")
def list_artifacts(run_id: str, path: str = "", store: Store = Depends(tracking_store)) -> dict:
    return {"files": [asdict(f) for f in store.list_artifacts(run_id, path)]}


@router.put("/runs/{run_id}/artifacts/{path:path}", name="artifacts_upload")
async def upload_artifact(
    run_id: str, path: str, request: Request, store: Store = Depends(tracking_store)
) -> dict:
    clean = sanitize_path(path)
    root = store._artifact_root(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "upload"
        with local.open("wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        info = store.stores.artifacts.log_file(
            local, f"{root}/{clean}", actor=store.actor, project_id=store.project_id
        )
    return {"path": clean, "sha256": info.sha256, "size": info.size}


@router.get(
    "/runs/{run_id}/artifacts/{path:path}",
    name="artifacts_download",
    responses={200: {"content": {"*/*": {}}, "description": "the file's bytes"}},
)
def download_artifact(run_id: str, path: str, store: Store = Depends(tracking_store)) -> Response:
    root = store._artifact_root(run_id)
    full = f"{root}/{sanitize_path(path)}"
    # Verified before the first byte: a tampered file is a loopstack error, not a cut stream.
    blob = store.stores.artifacts.open_verified(full)
    return StreamingResponse(
        blob, media_type="application/octet-stream", headers={"Content-Length": str(blob.size)}
    )


# -- audit ----------------------------------------------------------------------------
def _audit_scope(request: Request) -> dict[str, Any]:
    """What of the audit log this caller may read.

    A global admin (an admin's token not scoped to a project, or any caller with auth
    off) asking in no particular project reads the whole log. Anyone else reads the
    events of the project the request acts in; its administration events (members,
    policy) only if they are that project's admin. User and token events belong to no
    project, so only the whole log shows them.
    """
    principal = principal_of(request)
    if (
        principal.is_admin
        and principal.project_id is None
        and not request.headers.get(PROJECT_HEADER)
    ):
        return {"project_id": None, "include_admin": True}
    project_id = project_of(request)
    role = role_of(request.app.state.stores.db, principal, project_id)
    return {
        "project_id": project_id,
        "include_admin": principal.is_admin or role is Role.ADMIN,
    }


@router.get("/audit/verify", name="audit_verify")
def audit_verify(request: Request, anchors: bool = False) -> dict:
    """Verify the hash chain (and, with ``anchors``, against the anchors at the server's
    own ``audit_anchor_path``: a client never names a path on the server).

    The whole chain is always walked, but the answer speaks only of the events the caller
    may read (see ``/audit/events``): ``checked`` counts those, and a break at an event of
    another project, an administration event, or a deleted one is reported as
    ``ok: false`` with no ``broken_seq`` and a reason saying only that it lies outside,
    so no one learns about another project's events. A global admin gets the whole
    answer.
    """
    where = request.app.state.config.audit_anchor_path if anchors else None
    db = request.app.state.stores.db
    return asdict(audit.verify(db, anchors=where, **_audit_scope(request)))


@router.post("/audit/anchor", name="audit_anchor")
def audit_anchor(request: Request) -> dict:
    """Append the verified chain's signed head to the server's ``audit_anchor_path``."""
    where = request.app.state.config.audit_anchor_path
    return {**audit.anchor(request.app.state.stores.db, to=where), "to": where}


@router.get("/audit/events", name="audit_events")
def audit_events(
    request: Request,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: int = Query(1000, ge=1, le=100_000),
    before: int | None = Query(None, ge=1, le=2**63 - 1),
) -> dict:
    """The newest audit events the caller may read, oldest first; with ``before``, the
    newest of those whose ``seq`` is below it (the page before one starting there).

    A global admin asking in no particular project reads the whole log, administration
    of users and tokens included; a project's admin reads that project's events,
    membership and policy changes included; anyone else reads their project's events
    without those.
    """
    return {
        "events": audit.events(
            request.app.state.stores.db,
            object_type=object_type,
            object_id=object_id,
            **_audit_scope(request),
            limit=limit,
            before=before,
        )
    }
