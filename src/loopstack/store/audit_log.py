"""Read and verify the audit log, locally or through a server: one interface, two backends.

``open_audit_log`` decides which, from the tracking URI (``store.remote.server_url``):
an http(s) URI reads ``GET /api/v1/audit/events`` and ``/api/v1/audit/verify`` with the
token (the server decides who may), anything else reads the metadata database.

>>> log = open_audit_log()
>>> log.verify().ok
True
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from loopstack.store.audit import VerifyResult

if TYPE_CHECKING:
    from loopstack.config import Settings
    from loopstack.store.metadata import Database
    from loopstack.store.remote import HttpClient

__all__ = ["AuditLog", "LocalAuditLog", "RestAuditLog", "open_audit_log"]


class AuditLog(abc.ABC):
    """The audit log as a reader sees it: its events, and whether its chain holds."""

    @abc.abstractmethod
    def events(
        self, *, object_type: str | None = None, object_id: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events, optionally of one object, oldest first."""

    @abc.abstractmethod
    def verify(self, *, anchors: str | bool | None = None) -> VerifyResult:
        """Walk the whole chain; the result names the first broken link, if any (through a
        server, only among the events the caller may read: see ``audit.verify``).

        ``anchors``: also check the anchors at that path (``True``: where the settings
        put them; through a server always the server's own)."""

    @abc.abstractmethod
    def anchor(self, *, to: str | None = None) -> dict[str, Any]:
        """Append the verified chain's signed head outside the database; returns it."""


class LocalAuditLog(AuditLog):
    """The audit log of a metadata database; with ``project_id``, that project's events."""

    def __init__(
        self, db: Database, *, project_id: int | None = None, anchor_path: str | None = None
    ) -> None:
        self.db = db
        self.project_id = project_id
        self.anchor_path = anchor_path

    def events(
        self, *, object_type: str | None = None, object_id: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        from loopstack.store import audit

        return audit.events(
            self.db,
            object_type=object_type,
            object_id=object_id,
            project_id=self.project_id,
            limit=limit,
        )

    def verify(self, *, anchors: str | bool | None = None) -> VerifyResult:
        from loopstack.store import audit

        where = self._anchor_path() if anchors is True else anchors or None
        return audit.verify(self.db, anchors=where)

    def _anchor_path(self) -> str | None:
        from loopstack.config import settings

        return self.anchor_path or settings().audit_anchor_path

    def anchor(self, *, to: str | None = None) -> dict[str, Any]:
        from loopstack.store import audit

        where = to or self._anchor_path()
        return {**audit.anchor(self.db, to=where), "to": where}


class RestAuditLog(AuditLog):
    """The audit log of the database behind a loopstack server."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def events(
        self, *, object_type: str | None = None, object_id: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        params = {"object_type": object_type, "object_id": object_id, "limit": limit}
        return list(self.client.call("GET", "/audit/events", params=params)["events"])

    def verify(self, *, anchors: str | bool | None = None) -> VerifyResult:
        _no_remote_path(anchors, "verify against")
        got = self.client.call("GET", "/audit/verify", params={"anchors": bool(anchors)})
        return VerifyResult(
            bool(got["ok"]),
            int(got["checked"]),
            got.get("broken_seq"),
            got.get("reason"),
            int(got.get("legacy", 0)),
            int(got.get("anchors", 0)),
        )

    def anchor(self, *, to: str | None = None) -> dict[str, Any]:
        _no_remote_path(to, "write")
        return dict(self.client.call("POST", "/audit/anchor"))


def _no_remote_path(path: str | bool | None, verb: str) -> None:
    if isinstance(path, str):
        from loopstack.errors import Invalid

        raise Invalid(
            f"through a server, anchors are those at the server's LOOPSTACK_AUDIT_ANCHOR_PATH; "
            f"cannot {verb} anchors at {path!r} (unset LOOPSTACK_TRACKING_URI to use a path "
            "where the database is)",
            field="anchors",
        )


def open_audit_log(config: Settings | None = None, *, project_id: int | None = None) -> AuditLog:
    """The audit log the configuration names: through the server (which scopes it to the
    request's project), or the local database (``project_id``: that project's events)."""
    from loopstack.config import settings
    from loopstack.store.remote import HttpClient, local_config, server_url

    config = config or settings()
    if server_url(config) is not None:
        return RestAuditLog(HttpClient.from_settings(config))
    from loopstack.store import open_stores

    return LocalAuditLog(
        open_stores(local_config(config)).db,
        project_id=project_id,
        anchor_path=config.audit_anchor_path,
    )
