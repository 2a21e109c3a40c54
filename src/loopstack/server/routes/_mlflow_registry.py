"""MLflow's model registry REST API (``/api/2.0/mlflow/registered-models/...`` and
``.../model-versions/...``) over loopstack's registry.

The real ``mlflow`` client registers, tags, describes, renames and aliases models here
unchanged. Loopstack's rules hold whichever API asks: a version records the sha256 of
every file under its source (see ``_mlflow_registry_source``), versions are immutable
(delete is refused), stages do not exist (aliases replace them), and a protected alias
(``production``) moves only through an approved request, so ``set-alias`` to it answers
``PERMISSION_DENIED`` naming the approval it needs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ValidationError

from loopstack.errors import Conflict, Forbidden, Invalid, NotFound
from loopstack.registry import ModelVersion, RegisteredModel, SqlRegistry
from loopstack.server._boundary import QueryWhole
from loopstack.server._security import authorize, principal_of, project_of
from loopstack.server.routes import _mlflow_registry_render as render
from loopstack.server.routes import _mlflow_registry_search as search
from loopstack.server.routes._deps import tracking_store
from loopstack.server.routes._mlflow_registry_bodies import (
    AliasBody,
    CreateModelVersionBody,
    CreateRegisteredModelBody,
    DeleteAliasBody,
    LatestVersionsBody,
    ModelNameBody,
    ModelTagBody,
    RenameRegisteredModelBody,
    TransitionStageBody,
    UpdateModelVersionBody,
    UpdateRegisteredModelBody,
    VersionBody,
    VersionTagBody,
)
from loopstack.server.routes._mlflow_registry_source import MODEL_ID_TAG, resolve_source
from loopstack.server.routes._mlflow_routing import mlflow_route
from loopstack.tracking._logged_model_runs import record_registration
from loopstack.tracking._sql_store import SqlTrackingStore

__all__ = ["model_registry", "registry_router", "router"]

router = APIRouter(dependencies=[Depends(authorize)], tags=["mlflow-registry"])
registry_router = router

# MLflow's limits on one search page
_MAX_MODELS, _MAX_VERSIONS = 1000, 200_000
_SCAN = 1_000_000  # rows read to filter in Python; the registry caps every query
_STAGES = {"none", "staging", "production", "archived"}
B = TypeVar("B", bound=BaseModel)


def model_registry(request: Request) -> SqlRegistry:
    """The registry of the caller's project, acting as the caller."""
    return SqlRegistry(
        request.app.state.stores, actor=principal_of(request).user, project_id=project_of(request)
    )


_route = mlflow_route(router)


def _json_or_query(model: type[B]) -> Callable[[Request], Awaitable[B]]:
    """A DELETE's fields: the JSON body the client sends, or the query string of a raw call."""

    async def parse(request: Request) -> B:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw.strip() else dict(request.query_params)
        except ValueError as exc:
            raise Invalid(f"the request body must be JSON; got {raw[:60]!r}", field="body") from exc
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            parts = [
                f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}"
                for e in exc.errors()
            ]
            raise Invalid(
                "invalid request: " + "; ".join(parts),
                field=".".join(str(p) for p in exc.errors()[0]["loc"]) or None,
            ) from None

    parse.body_model = model  # type: ignore[attr-defined]  # the spec declares it (_openapi)
    return parse


def _max_results(value: int, limit: int) -> int:
    if not 0 < value <= limit:
        raise Invalid(
            f"max_results must be between 1 and {limit}; got {value}", field="max_results"
        )
    return value


def _tag_value(key: str, value: str | None) -> str:
    if value is None:
        raise Invalid(f"tag {key!r} needs a value; got none", field="value")
    return value


def _model(reg: SqlRegistry, m: RegisteredModel) -> dict[str, Any]:
    latest = None
    if m.latest_version is not None:
        try:
            latest = reg.get_model_version(m.name, m.latest_version)
        except NotFound:  # renamed or deleted meanwhile: show the model as it was read
            latest = None
    return render.registered_model(m, latest)


def _protected_aliases(reg: SqlRegistry) -> list[str]:
    # The registry keeps the project's policy private; its protected aliases decide here
    # what a model deletion may take away.
    policy = reg.db.read(lambda conn: reg._policy(conn, reg.project_id))
    return list(policy["protected_aliases"])


# -- registered models ------------------------------------------------------------------
@_route("POST", "/registered-models/create", "mlflow_registered_models_create")
def create_registered_model(
    body: CreateRegisteredModelBody, reg: SqlRegistry = Depends(model_registry)
) -> dict:
    m = reg.create_registered_model(
        body.name, description=body.description or "", tags={t.key: t.value for t in body.tags}
    )
    return {"registered_model": _model(reg, m)}


@_route("GET", "/registered-models/get", "mlflow_registered_models_get")
def get_registered_model(
    name: str = Query(...), reg: SqlRegistry = Depends(model_registry)
) -> dict:
    return {"registered_model": _model(reg, reg.get_registered_model(name))}


@_route("GET", "/registered-models/search", "mlflow_registered_models_search")
def search_registered_models(
    filter: str | None = None,
    max_results: QueryWhole = 100,
    order_by: list[str] = Query([]),
    page_token: str | None = None,
    reg: SqlRegistry = Depends(model_registry),
) -> dict:
    _max_results(max_results, _MAX_MODELS)
    clauses = search.parse_filter(filter, search.MODEL_FIELDS, "registered model")
    name = search.equality(clauses, "name")
    if name is not None:
        try:
            models = [reg.get_registered_model(name)]
        except NotFound:
            models = []
    else:
        models = reg.search_registered_models(max_results=_SCAN)
    found = search.search_registered_models(models, clauses, order_by)
    page, token = search.page(found, max_results, page_token)
    out: dict[str, Any] = {"registered_models": [_model(reg, m) for m in page]}
    if token:
        out["next_page_token"] = token
    return out


@_route("POST", "/registered-models/rename", "mlflow_registered_models_rename")
def rename_registered_model(
    body: RenameRegisteredModelBody, reg: SqlRegistry = Depends(model_registry)
) -> dict:
    m = reg.update_registered_model(body.name, new_name=body.new_name)
    return {"registered_model": _model(reg, m)}


@_route("PATCH", "/registered-models/update", "mlflow_registered_models_update")
def update_registered_model(
    body: UpdateRegisteredModelBody, reg: SqlRegistry = Depends(model_registry)
) -> dict:
    m = reg.update_registered_model(body.name, description=body.description)
    return {"registered_model": _model(reg, m)}


@_route("DELETE", "/registered-models/delete", "mlflow_registered_models_delete")
def delete_registered_model(
    body: ModelNameBody = Depends(_json_or_query(ModelNameBody)),
    reg: SqlRegistry = Depends(model_registry),
) -> dict:
    model = reg.get_registered_model(body.name)
    held = sorted(a for a in model.aliases if a in _protected_aliases(reg))
    if held:
        raise Forbidden(
            f"model {body.name!r} holds the protected alias(es) {held} (version "
            f"{model.aliases[held[0]]}): deleting it would take them away without an approved "
            "request; have an admin remove them with an override first"
        )
    reg.delete_registered_model(body.name)
    return {}


@_route("POST", "/registered-models/set-tag", "mlflow_registered_models_set_tag")
def set_registered_model_tag(
    body: ModelTagBody, reg: SqlRegistry = Depends(model_registry)
) -> dict:
    reg.set_registered_model_tag(body.name, body.key, _tag_value(body.key, body.value))
    return {}


@_route("DELETE", "/registered-models/delete-tag", "mlflow_registered_models_delete_tag")
def delete_registered_model_tag(
    body: ModelTagBody = Depends(_json_or_query(ModelTagBody)),
    reg: SqlRegistry = Depends(model_registry),
) -> dict:
    # An MLflow server answers 200 for a tag that is not there; the model must exist.
    if body.key in reg.get_registered_model(body.name).tags:
        reg.delete_registered_model_tag(body.name, body.key)
    return {}


def _latest_versions(reg: SqlRegistry, name: str, stages: list[str]) -> dict:
    bad = [s for s in stages if s.lower() not in _STAGES]
    if bad:
        raise Invalid(
            f"stages must be among None, Staging, Production, Archived; got {bad}", field="stages"
        )
    model = reg.get_registered_model(name)
    wanted = not stages or any(s.lower() == "none" for s in stages)
    versions = []
    if wanted and model.latest_version is not None:  # every loopstack version is in "None"
        versions = [render.model_version(reg.get_model_version(name, model.latest_version))]
    return {"model_versions": versions}


@_route(
    "POST", "/registered-models/get-latest-versions", "mlflow_registered_models_latest_versions"
)
def get_latest_versions(
    body: LatestVersionsBody, reg: SqlRegistry = Depends(model_registry)
) -> dict:
    return _latest_versions(reg, body.name, body.stages)


@_route(
    "GET", "/registered-models/get-latest-versions", "mlflow_registered_models_latest_versions_get"
)
def get_latest_versions_get(
    name: str = Query(...),
    stages: list[str] = Query([]),
    reg: SqlRegistry = Depends(model_registry),
) -> dict:
    return _latest_versions(reg, name, stages)


# -- aliases ------------------------------------------------------------------------------
@_route("POST", "/registered-models/alias", "mlflow_registered_models_set_alias")
def set_alias(body: AliasBody, reg: SqlRegistry = Depends(model_registry)) -> dict:
    reg.set_alias(body.name, body.alias, body.version)
    return {}


@_route("DELETE", "/registered-models/alias", "mlflow_registered_models_delete_alias")
def delete_alias(
    body: DeleteAliasBody = Depends(_json_or_query(DeleteAliasBody)),
    reg: SqlRegistry = Depends(model_registry),
) -> dict:
    # As on an MLflow server, removing an alias that is not set is not an error.
    if body.alias in reg.get_registered_model(body.name).aliases:
        reg.delete_alias(body.name, body.alias)
    return {}


@_route("GET", "/registered-models/alias", "mlflow_registered_models_get_by_alias")
def get_by_alias(
    name: str = Query(...), alias: str = Query(...), reg: SqlRegistry = Depends(model_registry)
) -> dict:
    return {"model_version": render.model_version(reg.get_version_by_alias(name, alias))}


# -- model versions -----------------------------------------------------------------------
@_route("POST", "/model-versions/create", "mlflow_model_versions_create")
def create_model_version(
    body: CreateModelVersionBody,
    request: Request,
    reg: SqlRegistry = Depends(model_registry),
    tracking: SqlTrackingStore = Depends(tracking_store),
) -> dict:
    reg.get_registered_model(body.name)  # as on MLflow: the model must be created first
    package = resolve_source(
        body.source,
        body.run_id,
        tracking=tracking,
        registry=reg,
        artifacts=request.app.state.stores.artifacts,
        model_id=body.model_id or None,
    )
    tags = {t.key: t.value for t in body.tags}
    tags.update(package.tags)
    version = reg.create_model_version(
        body.name,
        source=package.source,
        files=package.files,
        flavor=package.flavor,
        signature=package.signature,
        requirements=package.requirements,
        run_id=package.run_id,
        description=body.description or "",
        tags=tags,
        parents=package.parents or None,
        create_model=False,
    )
    if MODEL_ID_TAG in package.tags:
        record_registration(tracking, package.tags[MODEL_ID_TAG], version.name, version.version)
    return {"model_version": render.model_version(version)}


@_route("GET", "/model-versions/get", "mlflow_model_versions_get")
def get_model_version(
    name: str = Query(...), version: str = Query(...), reg: SqlRegistry = Depends(model_registry)
) -> dict:
    return {"model_version": render.model_version(reg.get_model_version(name, version))}


@_route("GET", "/model-versions/search", "mlflow_model_versions_search")
def search_model_versions(
    filter: str | None = None,
    max_results: QueryWhole = 10_000,
    order_by: list[str] = Query([]),
    page_token: str | None = None,
    reg: SqlRegistry = Depends(model_registry),
) -> dict:
    _max_results(max_results, _MAX_VERSIONS)
    clauses = search.parse_filter(filter, search.VERSION_FIELDS, "model version")
    versions: list[ModelVersion] = reg.search_model_versions(
        name=search.equality(clauses, "name"),
        run_id=search.equality(clauses, "run_id"),
        max_results=_SCAN,
    )
    found = search.search_model_versions(versions, clauses, order_by)
    page, token = search.page(found, max_results, page_token)
    out: dict[str, Any] = {"model_versions": [render.model_version(v) for v in page]}
    if token:
        out["next_page_token"] = token
    return out


@_route("PATCH", "/model-versions/update", "mlflow_model_versions_update")
def update_model_version(
    body: UpdateModelVersionBody, reg: SqlRegistry = Depends(model_registry)
) -> dict:
    v = reg.update_model_version(body.name, body.version, description=body.description)
    return {"model_version": render.model_version(v)}


@_route("DELETE", "/model-versions/delete", "mlflow_model_versions_delete")
def delete_model_version(
    body: VersionBody = Depends(_json_or_query(VersionBody)),
    reg: SqlRegistry = Depends(model_registry),
) -> dict:
    v = reg.get_model_version(body.name, body.version)
    raise Conflict(
        f"{v.name} version {v.version} cannot be deleted: loopstack keeps every "
        "registered version, since deployments, predictions and the audit log refer "
        "to it by number; move its aliases elsewhere (or delete the whole model) "
        "instead"
    )


@_route("POST", "/model-versions/transition-stage", "mlflow_model_versions_transition_stage")
def transition_stage(body: TransitionStageBody, reg: SqlRegistry = Depends(model_registry)) -> dict:
    v = reg.get_model_version(body.name, body.version)
    raise Conflict(
        f"{v.name} version {v.version} cannot move to stage {body.stage!r}: "
        "loopstack has no stages (MLflow deprecated them); point an alias at the "
        "version instead (set_registered_model_alias)"
    )


@_route("POST", "/model-versions/set-tag", "mlflow_model_versions_set_tag")
def set_model_version_tag(body: VersionTagBody, reg: SqlRegistry = Depends(model_registry)) -> dict:
    reg.set_model_version_tag(body.name, body.version, body.key, _tag_value(body.key, body.value))
    return {}


@_route("DELETE", "/model-versions/delete-tag", "mlflow_model_versions_delete_tag")
def delete_model_version_tag(
    body: VersionTagBody = Depends(_json_or_query(VersionTagBody)),
    reg: SqlRegistry = Depends(model_registry),
) -> dict:
    if body.key in reg.get_model_version(body.name, body.version).tags:
        reg.delete_model_version_tag(body.name, body.version, body.key)
    return {}


@_route("GET", "/model-versions/get-download-uri", "mlflow_model_versions_download_uri")
def get_download_uri(
    name: str = Query(...), version: str = Query(...), reg: SqlRegistry = Depends(model_registry)
) -> dict:
    return {"artifact_uri": render.source_uri(reg.get_model_version(name, version).source)}
