"""Feature definitions and the online feature server under /api/v1/features.

What ``RestFeatureRegistry`` and ``FeatureStore.get_online_features`` speak through a
server; the online answer has the shape of Feast's ``feast serve`` (see
``loopstack.features._online_remote``).
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from loopstack.errors import Invalid
from loopstack.features import FeatureStore
from loopstack.features._definitions import definition_from_dict
from loopstack.features._online_remote import response_to_wire
from loopstack.features._registry import FeatureRegistry
from loopstack.server._boundary import QueryWhole
from loopstack.server._security import authorize, principal_of, project_of

router = APIRouter(prefix="/api/v1/features", tags=["features"], dependencies=[Depends(authorize)])
_lock = threading.Lock()


def feature_store(request: Request) -> FeatureStore:
    """The caller's project's feature store (one per project: its read plans are cached)."""
    state = request.app.state
    project_id = project_of(request)
    with _lock:
        cache: dict[int, FeatureStore] = state.feature_stores
        store = cache.get(project_id)
        if store is None:
            store = cache[project_id] = FeatureStore.over(
                state.stores, project_id=project_id, actor="server", home=state.config.home
            )
    return store


def feature_registry(request: Request) -> FeatureRegistry:
    """The registry of the caller's project, acting as the caller (for writes)."""
    return FeatureRegistry(
        request.app.state.stores.db,
        project_id=project_of(request),
        actor=principal_of(request).user,
    )


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplyBody(_Body):
    definitions: list[dict[str, Any]]
    force: bool = False


class OnlineBody(_Body):
    features: Any = None  # checked by the store, so the error is the local one
    feature_service: str | None = None
    entities: dict[str, Any] | None = None
    entity_rows: Any = None
    full_feature_names: bool = False


@router.post("/apply", name="features_apply")
def apply(body: ApplyBody, request: Request) -> dict[str, Any]:
    objs = []
    for d in body.definitions:
        try:
            objs.append(definition_from_dict(d))
        except (KeyError, TypeError, ValueError) as exc:
            raise Invalid(
                f"expected each definition in its to_dict() form; got {str(d)[:120]}: {exc!r}",
                field="definitions",
            ) from exc
    applied = feature_registry(request).apply(objs, force=body.force)
    feature_store(request)._online_plans = {}  # definitions changed: plan reads again
    return {"applied": [asdict(a) for a in applied]}


@router.get("/entities", name="features_entities_list")
def list_entities(store: FeatureStore = Depends(feature_store)) -> dict[str, Any]:
    return {"entities": [e.to_dict() for e in store.registry.entities()]}


@router.get("/entities/{name}", name="features_entities_get")
def get_entity(name: str, store: FeatureStore = Depends(feature_store)) -> dict[str, Any]:
    return store.registry.entity(name).to_dict()


@router.get("/views", name="features_views_list")
def list_views(store: FeatureStore = Depends(feature_store)) -> dict[str, Any]:
    return {"views": [asdict(v) for v in store.registry.latest_versions()]}


@router.get("/views/{name}", name="features_views_get")
def get_view(
    name: str, version: QueryWhole | None = None, store: FeatureStore = Depends(feature_store)
) -> dict[str, Any]:
    return asdict(store.registry.view_version(name, version))


@router.get("/views/{name}/versions", name="features_views_versions")
def view_versions(name: str, store: FeatureStore = Depends(feature_store)) -> dict[str, Any]:
    return {"versions": [asdict(v) for v in store.registry.versions(name)]}


@router.delete("/views/{name}", name="features_views_delete")
def delete_view(name: str, request: Request, force: bool = False) -> dict[str, Any]:
    """Delete a feature view or service (every version) and a view's online rows."""
    from loopstack.features._materialize import online_store, online_view_key

    deleted = feature_registry(request).delete(name, force=force)
    store = feature_store(request)
    store._live.pop(name, None)
    if deleted.kind != "feature_service":
        online_store(store).delete_view(online_view_key(store, name))
    store._online_plans = {}
    return asdict(deleted)


@router.get("/freshness", name="features_freshness")
def freshness(
    view: str | None = None, store: FeatureStore = Depends(feature_store)
) -> dict[str, Any]:
    """How fresh the online store is per batch feature view (or only ``view``): rows
    online, the newest event time, the end of the last materialization, the lag, null
    rates per feature, the view's TTL and ``stale`` when the lag is past it."""
    return {"views": [f.to_dict() for f in store.freshness(view)]}


@router.get("/services", name="features_services_list")
def list_services(store: FeatureStore = Depends(feature_store)) -> dict[str, Any]:
    return {"services": [s.to_dict() for s in store.registry.services()]}


@router.get("/services/{name}", name="features_services_get")
def get_service(name: str, store: FeatureStore = Depends(feature_store)) -> dict[str, Any]:
    return store.registry.service(name).to_dict()


@router.post("/online", name="features_online_read")
def online(body: OnlineBody, store: FeatureStore = Depends(feature_store)) -> dict[str, Any]:
    """Feast's ``/get-online-features``: values, statuses and event times per feature."""
    if (body.features is None) == (body.feature_service is None):
        raise Invalid(
            "expected exactly one of 'features' (a list of 'view:feature') and "
            f"'feature_service' (a name); got features={body.features!r}, "
            f"feature_service={body.feature_service!r}",
            field="features",
        )
    if (body.entities is None) == (body.entity_rows is None):
        raise Invalid(
            "expected exactly one of 'entities' ({join key: [values]}) and 'entity_rows' "
            "([{join key: value}])",
            field="entities",
        )
    features = (
        store.get_feature_service(body.feature_service)
        if body.feature_service is not None
        else body.features
    )
    rows = body.entities if body.entities is not None else body.entity_rows
    resp = store.get_online_features(rows, features, full_feature_names=body.full_feature_names)
    return response_to_wire(resp)
