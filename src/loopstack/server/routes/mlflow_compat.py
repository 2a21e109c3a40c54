"""MLflow's tracking REST API (``/api/2.0/mlflow/...``) over loopstack's tracking store.

The real ``mlflow`` client logs to a loopstack server unchanged: every success is a
200 with the fields the client reads (service.proto's JSON form), every error is
``{"error_code", "message"}`` with MLflow's code and status (the app's error handler
renders loopstack's errors so under these prefixes). Artifacts go through the
``mlflow-artifacts`` proxy in ``_mlflow_artifacts``; runs and experiments render their
locations as ``mlflow-artifacts:`` URIs so the client finds it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from loopstack.errors import Invalid, NotFound
from loopstack.server._boundary import QueryWhole
from loopstack.server._security import authorize
from loopstack.server.routes import _mlflow_render as render
from loopstack.server.routes._deps import tracking_store
from loopstack.server.routes._mlflow_artifacts import artifacts_router
from loopstack.server.routes._mlflow_bodies import (
    BatchBody,
    CreateExperimentBody,
    CreateRunBody,
    ExperimentIdBody,
    ExperimentTagBody,
    KeyValue,
    LogInputsBody,
    LogMetricBody,
    MetricBody,
    ParamBody,
    RunIdBody,
    RunTagBody,
    SearchExperimentsBody,
    SearchRunsBody,
    UpdateExperimentBody,
    UpdateRunBody,
    metric_value,
)
from loopstack.server.routes._mlflow_logged_models import logged_models, logged_models_router
from loopstack.server.routes._mlflow_routing import mlflow_route
from loopstack.tracking._entities import (
    DatasetInput,
    Metric,
    Run,
    RunStatus,
    check_batch_size,
)
from loopstack.tracking._experiment_changes import (
    delete_experiment_tag,
    rename_experiment,
    restore_experiment,
)
from loopstack.tracking._experiment_search import search_experiments as find_experiments
from loopstack.tracking._logged_model_runs import log_run_metrics
from loopstack.tracking._logged_models import LoggedModelStore
from loopstack.tracking._page_token import decode_token, encode_token
from loopstack.tracking._sql_store import SqlTrackingStore as Store

__all__ = ["artifacts_router", "logged_models_router", "router"]

router = APIRouter(dependencies=[Depends(authorize)], tags=["mlflow"])

#: where the tag records the location an MLflow client asked for (loopstack keeps its own)
REQUESTED_LOCATION_TAG = "loopstack.mlflow.requested_artifact_location"
_VIEWS = {
    None: "active",
    "": "active",
    "ACTIVE_ONLY": "active",
    "DELETED_ONLY": "deleted",
    "ALL": "all",
    1: "active",
    2: "deleted",
    3: "all",
}
_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_MAX_SEARCH = 50_000
_BULK_RUNS, _BULK_MAX = 100, 2500
_RUN_NAME_TAG = "mlflow.runName"


_route = mlflow_route(router)


def _view(value: str | int | None) -> str:
    key = value.upper() if isinstance(value, str) else value
    if key not in _VIEWS:
        raise Invalid(
            f"view type must be one of ACTIVE_ONLY, DELETED_ONLY, ALL; got {value!r} instead",
            field="view_type",
        )
    return _VIEWS[key]


def _max_results(value: int, limit: int = _MAX_SEARCH) -> int:
    if not 0 < value <= limit:
        raise Invalid(
            f"max_results must be between 1 and {limit}; got {value}", field="max_results"
        )
    return value


def _run_id(run_id: str | None, run_uuid: str | None) -> str:
    rid = run_id or run_uuid
    if not rid:
        raise Invalid("a run_id is required; got none", field="run_id")
    return rid


def _pairs(items: list[KeyValue], kind: str) -> dict[str, str]:
    """A list of {key, value} as a dict; one key with two different values is refused."""
    out: dict[str, str] = {}
    for kv in items:
        if kind == "param" and kv.key in out and out[kv.key] != kv.value:
            raise Invalid(
                f"param {kv.key!r} appears twice in one batch with different values "
                f"({out[kv.key]!r} and {kv.value!r})",
                field=f"params.{kv.key}",
            )
        out[kv.key] = kv.value
    return out


def _runs(models: LoggedModelStore, runs: list[Run]) -> list[dict[str, Any]]:
    """Runs as MLflow renders them, with the logged models each used and produced."""
    links = models.links_of([r.run_id for r in runs])
    out = []
    for r in runs:
        rendered = render.run(r)
        mine = links.get(r.run_id)
        if mine:
            rendered["inputs"]["model_inputs"] = [{"model_id": m} for m, _ in mine["input"]]
            rendered["outputs"] = {
                "model_outputs": [{"model_id": m, "step": s} for m, s in mine["output"]]
            }
        out.append(rendered)
    return out


def _model_points(models: LoggedModelStore, run_id: str, metrics: list[MetricBody]) -> None:
    """Log metric points to a run, and those naming a logged model to it too."""
    points = [Metric(m.key, metric_value(m.key, m.value), m.step, m.timestamp) for m in metrics]
    on = [
        (m.model_id, m.dataset_name or "", m.dataset_digest or "") if m.model_id else None
        for m in metrics
    ]
    log_run_metrics(models, run_id, points, on)


def _log(
    store: Store,
    run_id: str,
    *,
    metrics: list[Metric] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """``log_batch``; a ``mlflow.runName`` tag also renames the run, as on an MLflow server."""
    store.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    name = (tags or {}).get(_RUN_NAME_TAG)
    if name:
        store.update_run(run_id, run_name=name)


# -- experiments ----------------------------------------------------------------------
@_route("POST", "/experiments/create", "mlflow_experiments_create")
def create_experiment(body: CreateExperimentBody, store: Store = Depends(tracking_store)) -> dict:
    tags = {t.key: t.value for t in body.tags}
    if body.artifact_location:
        # Loopstack keeps its own logical location so the proxy serves the run's artifacts;
        # the location asked for is kept where a user can see it.
        tags[REQUESTED_LOCATION_TAG] = body.artifact_location
    return {"experiment_id": store.create_experiment(body.name, tags=tags)}


@_route("GET", "/experiments/get", "mlflow_experiments_get")
def get_experiment(experiment_id: str = Query(...), store: Store = Depends(tracking_store)) -> dict:
    return {"experiment": render.experiment(store.get_experiment(experiment_id))}


@_route("GET", "/experiments/get-by-name", "mlflow_experiments_get_by_name")
def get_experiment_by_name(
    experiment_name: str = Query(...), store: Store = Depends(tracking_store)
) -> dict:
    exp = store.get_experiment_by_name(experiment_name)
    if exp is None:
        raise NotFound(f"no experiment named {experiment_name!r}")
    return {"experiment": render.experiment(exp)}


def _search_experiments(store: Store, body: SearchExperimentsBody) -> dict:
    max_results = _max_results(body.max_results)
    exps = store.search_experiments(view=_view(body.view_type), max_results=_MAX_SEARCH)
    page, token = find_experiments(
        exps,
        filter_string=body.filter,
        order_by=body.order_by,
        max_results=max_results,
        page_token=body.page_token,
    )
    out: dict[str, Any] = {"experiments": [render.experiment(e) for e in page]}
    if token:
        out["next_page_token"] = token
    return out


@_route("POST", "/experiments/search", "mlflow_experiments_search")
def search_experiments(body: SearchExperimentsBody, store: Store = Depends(tracking_store)) -> dict:
    return _search_experiments(store, body)


@_route("GET", "/experiments/search", "mlflow_experiments_search_get")
def search_experiments_get(
    max_results: QueryWhole = 1000,
    page_token: str | None = None,
    filter: str | None = None,
    order_by: list[str] = Query([]),
    view_type: str | None = None,
    store: Store = Depends(tracking_store),
) -> dict:
    view: str | int | None = int(view_type) if view_type and view_type.isdigit() else view_type
    body = SearchExperimentsBody(
        max_results=max_results,
        page_token=page_token,
        filter=filter,
        order_by=order_by,
        view_type=view,
    )
    return _search_experiments(store, body)


@_route("POST", "/experiments/delete", "mlflow_experiments_delete")
def delete_experiment(body: ExperimentIdBody, store: Store = Depends(tracking_store)) -> dict:
    store.delete_experiment(body.experiment_id)
    return {}


@_route("POST", "/experiments/restore", "mlflow_experiments_restore")
def restore(body: ExperimentIdBody, store: Store = Depends(tracking_store)) -> dict:
    restore_experiment(store, body.experiment_id)
    return {}


@_route("POST", "/experiments/update", "mlflow_experiments_update")
def update_experiment(body: UpdateExperimentBody, store: Store = Depends(tracking_store)) -> dict:
    rename_experiment(store, body.experiment_id, body.new_name)
    return {}


@_route("POST", "/experiments/set-experiment-tag", "mlflow_experiments_set_tag")
def set_experiment_tag(body: ExperimentTagBody, store: Store = Depends(tracking_store)) -> dict:
    if body.value is None:
        raise Invalid(f"tag {body.key!r} needs a value; got none", field="value")
    store.set_experiment_tag(body.experiment_id, body.key, body.value)
    return {}


@_route("POST", "/experiments/delete-experiment-tag", "mlflow_experiments_delete_tag")
def delete_exp_tag(body: ExperimentTagBody, store: Store = Depends(tracking_store)) -> dict:
    delete_experiment_tag(store, body.experiment_id, body.key)
    return {}


# -- runs -----------------------------------------------------------------------------
@_route("POST", "/runs/create", "mlflow_runs_create")
def create_run(body: CreateRunBody, store: Store = Depends(tracking_store)) -> dict:
    run = store.create_run(
        body.experiment_id or "0",
        run_name=body.run_name or None,
        start_time=body.start_time,
        tags=_pairs(body.tags, "tag"),
        user_id=body.user_id or None,
    )
    return {"run": render.run(run)}


@_route("GET", "/runs/get", "mlflow_runs_get")
def get_run(
    run_id: str | None = None,
    run_uuid: str | None = None,
    store: Store = Depends(tracking_store),
    models: LoggedModelStore = Depends(logged_models),
) -> dict:
    return {"run": _runs(models, [store.get_run(_run_id(run_id, run_uuid))])[0]}


@_route("POST", "/runs/update", "mlflow_runs_update")
def update_run(body: UpdateRunBody, store: Store = Depends(tracking_store)) -> dict:
    status = (
        _STATUSES.get(body.status, body.status) if isinstance(body.status, int) else body.status
    )
    if isinstance(status, int):
        raise Invalid(
            f"status must be one of {list(RunStatus.ALL)}; got {body.status!r}", field="status"
        )
    run = store.update_run(
        body.the_run_id(), status=status, end_time=body.end_time, run_name=body.run_name or None
    )
    return {"run_info": render.run_info(run)}


@_route("POST", "/runs/delete", "mlflow_runs_delete")
def delete_run(body: RunIdBody, store: Store = Depends(tracking_store)) -> dict:
    store.delete_run(body.the_run_id())
    return {}


@_route("POST", "/runs/restore", "mlflow_runs_restore")
def restore_run(body: RunIdBody, store: Store = Depends(tracking_store)) -> dict:
    store.restore_run(body.the_run_id())
    return {}


@_route("POST", "/runs/search", "mlflow_runs_search")
def search_runs(
    body: SearchRunsBody,
    store: Store = Depends(tracking_store),
    models: LoggedModelStore = Depends(logged_models),
) -> dict:
    runs, token = store.search_runs(
        body.experiment_ids,
        filter_string=body.filter or "",
        view=_view(body.run_view_type),
        max_results=_max_results(body.max_results),
        order_by=body.order_by,
        page_token=body.page_token or None,
    )
    out: dict[str, Any] = {"runs": _runs(models, runs)}
    if token:
        out["next_page_token"] = token
    return out


@_route("POST", "/runs/log-metric", "mlflow_runs_log_metric")
def log_metric(body: LogMetricBody, models: LoggedModelStore = Depends(logged_models)) -> dict:
    _model_points(models, body.the_run_id(), [body])
    return {}


@_route("POST", "/runs/log-parameter", "mlflow_runs_log_param")
def log_param(body: ParamBody, store: Store = Depends(tracking_store)) -> dict:
    store.log_batch(body.the_run_id(), params={body.key: body.value})
    return {}


@_route("POST", "/runs/set-tag", "mlflow_runs_set_tag")
def set_tag(body: RunTagBody, store: Store = Depends(tracking_store)) -> dict:
    if body.value is None:
        raise Invalid(f"tag {body.key!r} needs a value; got none", field="value")
    _log(store, body.the_run_id(), tags={body.key: body.value})
    return {}


@_route("POST", "/runs/delete-tag", "mlflow_runs_delete_tag")
def delete_tag(body: RunTagBody, store: Store = Depends(tracking_store)) -> dict:
    store.delete_tag(body.the_run_id(), body.key)
    return {}


@_route("POST", "/runs/log-batch", "mlflow_runs_log_batch")
def log_batch(
    body: BatchBody,
    store: Store = Depends(tracking_store),
    models: LoggedModelStore = Depends(logged_models),
) -> dict:
    check_batch_size(
        metrics=len(body.metrics), params=len(body.params), tags=len(body.tags), mlflow=True
    )
    run_id = body.the_run_id()
    params, tags = _pairs(body.params, "param"), _pairs(body.tags, "tag")
    if any(m.model_id for m in body.metrics):
        _model_points(models, run_id, body.metrics)
        if params or tags:
            _log(store, run_id, params=params, tags=tags)
        return {}
    metrics = [
        Metric(m.key, metric_value(m.key, m.value), m.step, m.timestamp) for m in body.metrics
    ]
    _log(store, run_id, metrics=metrics, params=params, tags=tags)
    return {}


@_route("POST", "/runs/log-inputs", "mlflow_runs_log_inputs")
def log_inputs(
    body: LogInputsBody,
    store: Store = Depends(tracking_store),
    models: LoggedModelStore = Depends(logged_models),
) -> dict:
    datasets = [
        DatasetInput(
            d.dataset.name,
            d.dataset.digest,
            d.dataset.source_type,
            d.dataset.source,
            d.dataset.schema_,
            d.dataset.profile,
            {t.key: t.value for t in d.tags},
        )
        for d in body.datasets
    ]
    run_id = body.the_run_id()
    if body.models:
        models.link(run_id, {m.model_id: 0 for m in body.models}, "input")
    if datasets:
        store.log_inputs(run_id, datasets)
    elif not body.models:
        store.get_run(run_id)  # an empty request still needs a run that exists
    return {}


# -- metrics --------------------------------------------------------------------------
@_route("GET", "/metrics/get-history", "mlflow_metrics_get_history")
def get_metric_history(
    metric_key: str = Query(...),
    run_id: str | None = None,
    run_uuid: str | None = None,
    max_results: QueryWhole | None = None,
    page_token: str | None = None,
    store: Store = Depends(tracking_store),
) -> dict:
    history = store.get_metric_history(_run_id(run_id, run_uuid), metric_key)
    offset = decode_token(page_token)
    end = len(history) if max_results is None else offset + _max_results(max_results, 25_000)
    out: dict[str, Any] = {"metrics": [render.metric(m) for m in history[offset:end]]}
    if end < len(history):
        out["next_page_token"] = encode_token(end)
    return out


@_route("GET", "/metrics/get-history-bulk-interval", "mlflow_metrics_history_bulk")
def get_history_bulk_interval(
    run_ids: list[str] = Query(...),
    metric_key: str = Query(...),
    start_step: QueryWhole | None = None,
    end_step: QueryWhole | None = None,
    max_results: QueryWhole = _BULK_MAX,
    store: Store = Depends(tracking_store),
) -> dict:
    if len(run_ids) > _BULK_RUNS:
        raise Invalid(
            f"at most {_BULK_RUNS} run_ids per request; got {len(run_ids)}", field="run_ids"
        )
    _max_results(max_results, _BULK_MAX)
    if (start_step is None) != (end_step is None):
        raise Invalid(
            "start_step and end_step go together: give both or neither", field="start_step"
        )
    if start_step is not None and end_step is not None and start_step > end_step:
        raise Invalid(
            f"start_step ({start_step}) must not exceed end_step ({end_step})", field="start_step"
        )
    histories = store.get_metric_histories(run_ids, metric_key)
    if start_step is not None:
        histories = {
            rid: [m for m in points if start_step <= m.step <= end_step]  # type: ignore
            for rid, points in histories.items()
        }
    steps = sorted({m.step for points in histories.values() for m in points})
    keep = render.sample_steps(steps, max_results)
    metrics = [
        render.metric(m, rid) for rid in sorted(histories) for m in histories[rid] if m.step in keep
    ]
    return {"metrics": metrics}


# -- artifacts (tracking API view; the client itself uses the mlflow-artifacts proxy) ---
@_route("GET", "/artifacts/list", "mlflow_artifacts_list_for_run")
def list_run_artifacts(
    run_id: str | None = None,
    run_uuid: str | None = None,
    path: str = "",
    store: Store = Depends(tracking_store),
) -> dict:
    run = store.get_run(_run_id(run_id, run_uuid))
    files = []
    for f in store.list_artifacts(run.run_id, path):
        entry: dict[str, Any] = {"path": f.path, "is_dir": f.is_dir}
        if not f.is_dir and f.size is not None:
            entry["file_size"] = f.size
        files.append(entry)
    return {"root_uri": render.artifact_uri(run.artifact_uri), "files": files}


# -- server info (MLflow 3 clients probe it before multipart transfers) ------------------
@router.get("/api/3.0/mlflow/server-info", name="mlflow_server_info")
def server_info() -> dict:
    return {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {},
    }
