"""MLflow 3's logged-model REST API (``/api/2.0/mlflow/logged-models/...``, ``runs/outputs``).

``mlflow.<flavor>.log_model`` creates a logged model here (``LOGGED_MODEL_PENDING``),
uploads its files through the ``mlflow-artifacts`` proxy under the model's own location
(``mlflow-artifacts:/<experiment>/models/<model_id>/artifacts``), links it to the run and
finalizes it. This module only translates between MLflow's JSON and the tracking
domain's ``LoggedModelStore``.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from loopstack.errors import Invalid
from loopstack.server._security import authorize
from loopstack.server.routes._deps import tracking_store
from loopstack.server.routes._mlflow_bodies import (
    KeyValue,
    LogOutputsBody,
    SearchLoggedModelsBody,
    _Body,
)
from loopstack.server.routes._mlflow_render import artifact_uri, key_values
from loopstack.server.routes._mlflow_routing import mlflow_route
from loopstack.store.artifacts import sanitize_path
from loopstack.tracking._entities import metric_value_to_json
from loopstack.tracking._logged_model_search import LoggedModel, ModelStatus
from loopstack.tracking._logged_models import LoggedModelStore
from loopstack.tracking._sql_store import SqlTrackingStore

__all__ = ["logged_models", "logged_models_router", "render_model"]

logged_models_router = APIRouter(dependencies=[Depends(authorize)], tags=["mlflow"])
_route = mlflow_route(logged_models_router)
_STATUS_NUMBERS = {1: ModelStatus.PENDING, 2: ModelStatus.READY, 3: ModelStatus.FAILED}


class CreateBody(_Body):
    experiment_id: str
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class FinalizeBody(_Body):
    model_id: str | None = None
    status: int | str


class TagsBody(_Body):
    tags: list[KeyValue] = Field(default_factory=list)


class ParamsBody(_Body):
    params: list[KeyValue] = Field(default_factory=list)


def logged_models(store: SqlTrackingStore = Depends(tracking_store)) -> LoggedModelStore:
    """The caller's logged models (their project, audited as them)."""
    return LoggedModelStore(store)


def render_model(m: LoggedModel) -> dict[str, Any]:
    """A ``LoggedModel`` message: ``{"info": {...}, "data": {"params", "metrics"}}``."""
    info: dict[str, Any] = {
        "model_id": m.model_id,
        "experiment_id": m.experiment_id,
        "name": m.name,
        "creation_timestamp_ms": m.creation_timestamp,
        "last_updated_timestamp_ms": m.last_updated_timestamp,
        "artifact_uri": artifact_uri(m.artifact_location),
        "status": m.status,
        "tags": key_values(m.tags),
    }
    for key, value in (
        ("model_type", m.model_type),
        ("source_run_id", m.source_run_id),
        ("status_message", m.status_message),
    ):
        if value:
            info[key] = value
    metrics = []
    for p in m.metrics:
        point: dict[str, Any] = {
            "key": p.key,
            "value": metric_value_to_json(p.value),  # NaN and infinities as MLflow's JSON
            "timestamp": p.timestamp,
            "step": p.step,
            "model_id": m.model_id,
            "run_id": p.run_id,
        }
        if p.dataset_name:
            point["dataset_name"] = p.dataset_name
        if p.dataset_digest:
            point["dataset_digest"] = p.dataset_digest
        metrics.append(point)
    return {"info": info, "data": {"params": key_values(m.params), "metrics": metrics}}


def _status(value: int | str) -> str:
    if isinstance(value, int):
        status = _STATUS_NUMBERS.get(value)
    else:
        status = value.upper() if value.upper() in ModelStatus.ALL else None
    if status is None:
        raise Invalid(
            f"status must be one of {list(ModelStatus.ALL)} (or 1-3); got {value!r}",
            field="status",
        )
    return status


# -- the models -----------------------------------------------------------------------
@_route("POST", "/logged-models", "mlflow_logged_models_create")
def create(body: CreateBody, models: LoggedModelStore = Depends(logged_models)) -> dict:
    model = models.create(
        body.experiment_id,
        name=body.name or None,
        source_run_id=body.source_run_id or None,
        model_type=body.model_type or None,
        params={p.key: p.value for p in body.params},
        tags={t.key: t.value for t in body.tags},
    )
    return {"model": render_model(model)}


@_route("POST", "/logged-models/search", "mlflow_logged_models_search")
def search(body: SearchLoggedModelsBody, models: LoggedModelStore = Depends(logged_models)) -> dict:
    page, token = models.search(
        body.experiment_ids,
        filter_string=body.filter or None,
        datasets=[
            {"dataset_name": d.dataset_name, "dataset_digest": d.dataset_digest or ""}
            for d in body.datasets
        ],
        order_by=[o.model_dump(exclude_none=True) for o in body.order_by],
        max_results=body.max_results or None,
        page_token=body.page_token or None,
    )
    out: dict[str, Any] = {"models": [render_model(m) for m in page]}
    if token:
        out["next_page_token"] = token
    return out


@_route("GET", "/logged-models/{model_id}", "mlflow_logged_models_get")
def get(
    model_id: str, allow_deleted: bool = False, models: LoggedModelStore = Depends(logged_models)
) -> dict:
    return {"model": render_model(models.get(model_id, allow_deleted=allow_deleted))}


@_route("PATCH", "/logged-models/{model_id}", "mlflow_logged_models_finalize")
def finalize(
    model_id: str, body: FinalizeBody, models: LoggedModelStore = Depends(logged_models)
) -> dict:
    if body.model_id and body.model_id != model_id:
        raise Invalid(
            f"the body names model {body.model_id!r} but the path names {model_id!r}",
            field="model_id",
        )
    return {"model": render_model(models.finalize(model_id, _status(body.status)))}


@_route("DELETE", "/logged-models/{model_id}", "mlflow_logged_models_delete")
def delete(model_id: str, models: LoggedModelStore = Depends(logged_models)) -> dict:
    models.delete(model_id)
    return {}


@_route("PATCH", "/logged-models/{model_id}/tags", "mlflow_logged_models_set_tags")
def set_tags(
    model_id: str, body: TagsBody, models: LoggedModelStore = Depends(logged_models)
) -> dict:
    models.set_tags(model_id, {t.key: t.value for t in body.tags})
    return {}


@_route(
    "DELETE", "/logged-models/{model_id}/tags/{tag_key:path}", "mlflow_logged_models_delete_tag"
)
def delete_tag(
    model_id: str, tag_key: str, models: LoggedModelStore = Depends(logged_models)
) -> dict:
    models.delete_tag(model_id, tag_key)
    return {}


@_route("POST", "/logged-models/{model_id}/params", "mlflow_logged_models_log_params")
def log_params(
    model_id: str, body: ParamsBody, models: LoggedModelStore = Depends(logged_models)
) -> dict:
    models.log_params(model_id, {p.key: p.value for p in body.params})
    return {}


# -- the model's files (what MLflow's UI asks; the client uses the proxy itself) -----------
def _model_path(model: LoggedModel, path: str | None) -> str:
    rel = sanitize_path(path or "", field="path", allow_empty=True)
    root = model.artifact_location.strip("/")
    return f"{root}/{rel}" if rel else root


@_route(
    "GET", "/logged-models/{model_id}/artifacts/directories", "mlflow_logged_models_list_artifacts"
)
def list_artifacts(
    model_id: str,
    request: Request,
    artifact_directory_path: str | None = None,
    models: LoggedModelStore = Depends(logged_models),
) -> dict:
    model = models.get(model_id)
    files = []
    root = model.artifact_location.strip("/")
    for f in request.app.state.stores.artifacts.list(_model_path(model, artifact_directory_path)):
        rel = f.path[len(root) + 1 :] if f.path.startswith(root + "/") else f.path
        entry: dict[str, Any] = {"path": rel, "is_dir": f.is_dir}
        if not f.is_dir and f.size is not None:
            entry["file_size"] = f.size
        files.append(entry)
    return {"root_uri": artifact_uri(model.artifact_location), "files": files}


@_route("GET", "/logged-models/{model_id}/artifacts/files", "mlflow_logged_models_get_artifact")
def get_artifact(
    model_id: str,
    request: Request,
    artifact_file_path: str = Query(""),
    models: LoggedModelStore = Depends(logged_models),
) -> StreamingResponse:
    if not artifact_file_path:
        raise Invalid(
            'Request must include the "artifact_file_path" query parameter.',
            field="artifact_file_path",
        )
    path = _model_path(models.get(model_id), artifact_file_path)
    chunks = request.app.state.stores.artifacts.iter_bytes(path)  # NotFound before any byte
    name = path.rsplit("/", 1)[-1].replace('"', "")
    return StreamingResponse(
        chunks,
        media_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- runs and their models ----------------------------------------------------------------
@_route("POST", "/runs/outputs", "mlflow_runs_log_outputs")
def log_outputs(body: LogOutputsBody, models: LoggedModelStore = Depends(logged_models)) -> dict:
    models.link(body.the_run_id(), {m.model_id: m.step for m in body.models}, "output")
    return {}
