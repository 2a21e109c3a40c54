"""``RestFeatureRegistry``: the registry of feature definitions through a loopstack server.

Definitions cross the wire as their ``to_dict()`` form, so what is registered is the
same everywhere. What JSON cannot carry stays in the process that applied it, as with
Feast's remote registry: a ``DataFrameSource``'s rows and an ``OnDemandFeatureView``'s
udf are registered by digest and reference, and only that process (which holds the live
objects, see ``FeatureStore``) can compute with them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from loopstack.features._definitions import Entity
from loopstack.features._registry import AppliedDefinition, DeletedDefinition, ViewVersion
from loopstack.features._registry_base import RegistryBackend, check_version
from loopstack.features._service import FeatureService
from loopstack.store.remote import HttpClient

__all__ = ["RestFeatureRegistry", "applied_to_dict", "view_version_to_dict"]


def view_version_to_dict(v: ViewVersion) -> dict[str, Any]:
    """The JSON form of a stored feature view version."""
    return asdict(v)


def applied_to_dict(a: AppliedDefinition) -> dict[str, Any]:
    """The JSON form of what ``apply`` did with one definition."""
    return asdict(a)


def _q(name: str) -> str:
    return quote(str(name), safe="")


class RestFeatureRegistry(RegistryBackend):
    """The registry API under ``/api/v1/features``."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def entity(self, name: str) -> Entity:
        """The registered entity ``name``."""
        return Entity.from_dict(self.client.call("GET", f"/features/entities/{_q(name)}"))

    def entities(self) -> list[Entity]:
        """Every registered entity, by name."""
        answer = self.client.call("GET", "/features/entities")
        return [Entity.from_dict(e) for e in answer["entities"]]

    def view_version(self, name: str, version: int | None = None) -> ViewVersion:
        """The stored record of a feature view's newest (or given) version."""
        check_version(version)
        answer = self.client.call("GET", f"/features/views/{_q(name)}", params={"version": version})
        return ViewVersion(**answer)

    def view_names(self) -> list[str]:
        """The names of every registered feature view, sorted."""
        return [v.name for v in self.latest_versions()]

    def latest_versions(self) -> list[ViewVersion]:
        """The newest version of every feature view, by name."""
        answer = self.client.call("GET", "/features/views")
        return [ViewVersion(**v) for v in answer["views"]]

    def versions(self, name: str) -> list[ViewVersion]:
        """Every version of one feature view, oldest first."""
        answer = self.client.call("GET", f"/features/views/{_q(name)}/versions")
        return [ViewVersion(**v) for v in answer["versions"]]

    def apply(self, objs: list[Any], *, force: bool = False) -> list[AppliedDefinition]:
        """Check and resolve here (the same errors as locally), then register on the server."""
        batch = self.prepare(objs)
        items = [*batch.entities.values(), *batch.views, *batch.odfvs, *batch.services]
        answer = self.client.call(
            "POST",
            "/features/apply",
            json={"definitions": [o.to_dict() for o in items], "force": bool(force)},
        )
        return [AppliedDefinition(**a) for a in answer["applied"]]

    def delete(self, name: str, *, force: bool = False) -> DeletedDefinition:
        """Delete a feature view or service on the server (refused there while in use)."""
        answer = self.client.call(
            "DELETE", f"/features/views/{_q(name)}", params={"force": bool(force)}
        )
        return DeletedDefinition(**answer)

    def service(self, name: str) -> FeatureService:
        """The newest version of feature service ``name``."""
        return FeatureService.from_dict(self.client.call("GET", f"/features/services/{_q(name)}"))

    def services(self) -> list[FeatureService]:
        """The newest version of every feature service, by name."""
        answer = self.client.call("GET", "/features/services")
        return [FeatureService.from_dict(s) for s in answer["services"]]
