"""Request-scoped objects shared by the route modules."""

from __future__ import annotations

from fastapi import Request

from loopstack.registry import SqlRegistry
from loopstack.server._security import principal_of, project_of
from loopstack.tracking._sql_store import SqlTrackingStore

__all__ = ["model_registry", "tracking_store"]


def tracking_store(request: Request) -> SqlTrackingStore:
    """The tracking store, acting as the caller (so the audit log names them)."""
    return SqlTrackingStore(
        request.app.state.stores,
        actor=principal_of(request).user,
        trust_user_id=not request.app.state.config.auth,
        project_id=project_of(request),
    )


def model_registry(request: Request) -> SqlRegistry:
    """The registry of the caller's project, acting as the caller."""
    return SqlRegistry(
        request.app.state.stores, actor=principal_of(request).user, project_id=project_of(request)
    )
