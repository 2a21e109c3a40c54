"""``RegistryBackend``: what ``FeatureStore`` needs from the registry of definitions.

``FeatureRegistry`` (``_registry.py``) keeps definitions in the metadata store;
``RestFeatureRegistry`` (``_rest_registry.py``) asks a loopstack server. The checks
that need no storage (what ``apply`` accepts, resolving entity names) live here, so
both refuse the same input with the same error.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, NotFound
from loopstack.features._definitions import (
    Entity,
    FeatureView,
    OnDemandFeatureView,
    RequestSource,
    definition_from_dict,
)
from loopstack.features._service import FeatureService

if TYPE_CHECKING:
    from loopstack.features._registry import AppliedDefinition, DeletedDefinition, ViewVersion

__all__ = ["ApplyBatch", "RegistryBackend", "check_version"]


@dataclass
class ApplyBatch:
    """One ``apply`` call's definitions, checked and with entity names resolved."""

    entities: dict[str, Entity]
    views: list[FeatureView]
    odfvs: list[OnDemandFeatureView]
    services: list[FeatureService]


#: versions are stored as 32-bit integers, and count from 1
MAX_VERSION = 2**31 - 1


def check_version(version: Any) -> None:
    """``Invalid`` unless ``version`` is ``None`` or an integer from 1 to ``MAX_VERSION``
    (PostgreSQL refuses to compare a 32-bit column with a larger number: a 500, found
    by the fuzzer)."""
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION
    ):
        raise Invalid(
            f"a feature view version must be an integer from 1 to {MAX_VERSION}; got {version!r}",
            field="version",
        )


class RegistryBackend(abc.ABC):
    """Entities, feature view versions and feature services of one project."""

    @abc.abstractmethod
    def entity(self, name: str) -> Entity:
        """The registered entity ``name`` (``NotFound`` names the registered ones)."""

    @abc.abstractmethod
    def entities(self) -> list[Entity]:
        """Every registered entity, by name."""

    @abc.abstractmethod
    def view_version(self, name: str, version: int | None = None) -> ViewVersion:
        """The stored record of a feature view's newest (or given) version."""

    @abc.abstractmethod
    def view_names(self) -> list[str]:
        """The names of every registered feature view, sorted."""

    @abc.abstractmethod
    def latest_versions(self) -> list[ViewVersion]:
        """The newest version of every feature view, by name."""

    @abc.abstractmethod
    def versions(self, name: str) -> list[ViewVersion]:
        """Every version of one feature view, oldest first."""

    @abc.abstractmethod
    def apply(self, objs: list[Any], *, force: bool = False) -> list[AppliedDefinition]:
        """Register entities, views and services (new versions when changed)."""

    @abc.abstractmethod
    def delete(self, name: str, *, force: bool = False) -> DeletedDefinition:
        """Delete every version of a feature view or service (refused while in use)."""

    @abc.abstractmethod
    def service(self, name: str) -> FeatureService:
        """The newest version of feature service ``name``."""

    @abc.abstractmethod
    def services(self) -> list[FeatureService]:
        """The newest version of every feature service, by name."""

    # -- shared by every backend ----------------------------------------------------------
    def definition(self, name: str, version: int | None = None) -> Any:
        """The FeatureView / OnDemandFeatureView of a stored version."""
        return definition_from_dict(self.view_version(name, version).definition)

    def prepare(self, objs: list[Any]) -> ApplyBatch:
        """Check what ``apply`` got, and resolve entity names (in the batch, else stored)."""
        objs = list(objs)
        kinds = Entity | FeatureView | OnDemandFeatureView | RequestSource | FeatureService
        for o in objs:
            if not isinstance(o, kinds):
                raise Invalid(
                    "apply takes Entity, FeatureView, OnDemandFeatureView and FeatureService "
                    f"objects; got {type(o).__name__} instead",
                    field="objs",
                )
        objs = _unique(objs)
        batch_entities = {o.name: o for o in objs if isinstance(o, Entity)}
        views = [
            self.resolve_entities(o, batch_entities) for o in objs if isinstance(o, FeatureView)
        ]
        for view in views:  # an Entity a view holds must be the one applied beside it
            for e in view.entities:
                if not isinstance(e, Entity):
                    continue
                other = batch_entities.get(e.name)
                if other is not None and other is not e and other.to_dict() != e.to_dict():
                    held, applied = _difference(e, other)
                    raise Invalid(
                        f"apply got two different definitions of Entity {e.name!r}: feature "
                        f"view {view.name!r} holds one with {held}, the Entity applied "
                        f"beside it has {applied}",
                        field="objs",
                    )
        odfvs = [o for o in objs if isinstance(o, OnDemandFeatureView)]
        for odfv in odfvs:
            odfv.sources = [
                self.resolve_entities(s, batch_entities) if isinstance(s, FeatureView) else s
                for s in odfv.sources
            ]
        services = [o for o in objs if isinstance(o, FeatureService)]
        return ApplyBatch(batch_entities, views, odfvs, services)

    def resolve_entities(
        self, view: FeatureView, batch: dict[str, Entity] | None = None
    ) -> FeatureView:
        """``view`` with each entity named by a string replaced by the registered Entity."""
        if all(isinstance(e, Entity) for e in view.entities):
            return view
        resolved: list[Entity | str] = []
        for e in view.entities:
            if isinstance(e, str):
                e = (batch or {}).get(e) or self._entity_or_none(e) or self._missing(e, view.name)
            resolved.append(e)
        view.entities = resolved
        return view

    def _entity_or_none(self, name: str) -> Entity | None:
        try:
            return self.entity(name)
        except NotFound:
            return None

    def _missing(self, name: str, view: str) -> Entity:
        known = ", ".join(e.name for e in self.entities()) or "none"
        raise NotFound(
            f"feature view {view!r} uses the entity {name!r}, which is not registered "
            f"(registered: {known}); apply the Entity first or in the same call"
        )


def _unique(objs: list[Any]) -> list[Any]:
    """``objs`` with identical duplicates dropped; ``Invalid`` naming both for differing ones.

    Two views that share an entity, each defining it in its own file, give two equal
    Entity objects: they are one definition.
    """
    first: dict[tuple[str, str], Any] = {}
    out: list[Any] = []
    for o in objs:
        key = (type(o).__name__, o.name)
        seen = first.get(key)
        if seen is None:
            first[key] = o
            out.append(o)
        elif seen is not o and seen.to_dict() != o.to_dict():
            one, two = _difference(seen, o)
            raise Invalid(
                f"apply got two different definitions of {key[0]} {key[1]!r}: one has "
                f"{one}, the other {two}; keep one (define it once and import it)",
                field="objs",
            )
    return out


def _difference(a: Any, b: Any) -> tuple[str, str]:
    """Where ``a`` and ``b`` differ, as each has it: ``("join_keys=['id']", ...)``."""
    da, db = a.to_dict(), b.to_dict()
    keys = [k for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)]
    return (
        ", ".join(f"{k}={da.get(k)!r}" for k in keys),
        ", ".join(f"{k}={db.get(k)!r}" for k in keys),
    )
