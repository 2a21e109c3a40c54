"""Versions of feature definitions in the metadata store.

Applying a definition identical to the current version (same digest) writes nothing.
A changed feature view gets the next version number. A change is *breaking*, and
refused with ``Conflict`` unless ``force=True`` (then recorded in the audit log), when:

- a feature keeps its name but changes its type;
- a feature is removed while a registered model version uses it;
- an entity changes its join keys.

Which model versions use a feature (the rule): ``get_historical_features(...,
register_as=NAME)`` registers the training set as a dataset version with a lineage edge
``feature:<view>:<feature>`` -> ``dataset_version:<name>/<version>`` per feature it
contains. A model version uses the feature when the run it was logged from has that
dataset version among its inputs: logged automatically when ``register_as`` runs inside
an active run, or with ``ls.log_input(ls.get_dataset(name, version))`` (a run input whose
source is ``dataset:<name>/<version>``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select

from loopstack.errors import Conflict, NotFound
from loopstack.features._definitions import (
    Entity,
    FeatureView,
    OnDemandFeatureView,
)
from loopstack.features._registry_base import RegistryBackend, check_version
from loopstack.features._service import FeatureService
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema import (
    Dataset,
    FeatureEntity,
    FeatureViewVersion,
    LineageEdge,
    ModelVersion,
    RegisteredModel,
    RunInput,
)

__all__ = [
    "SERVICE_KIND",
    "AppliedDefinition",
    "DeletedDefinition",
    "FeatureRegistry",
    "ViewVersion",
]

#: the ``kind`` of a feature service's rows (services are versioned beside the views)
SERVICE_KIND = "service"

ENT = cast(Table, FeatureEntity.__table__)
FV = cast(Table, FeatureViewVersion.__table__)
EDGES = cast(Table, LineageEdge.__table__)
DS, RI = cast(Table, Dataset.__table__), cast(Table, RunInput.__table__)
MV, RM = cast(Table, ModelVersion.__table__), cast(Table, RegisteredModel.__table__)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@dataclass(frozen=True)
class AppliedDefinition:
    """What ``apply`` did with one definition."""

    kind: str  # entity | feature_view | on_demand_feature_view
    name: str
    version: int
    changed: bool
    forced: list[str]  # the breaking changes that force=True let through
    warnings: list[str] = field(default_factory=list)  # e.g. a removed feature no model used


@dataclass(frozen=True)
class DeletedDefinition:
    """What ``delete`` removed."""

    kind: str  # feature_view | on_demand_feature_view | feature_service
    name: str
    versions: int  # how many versions were deleted
    forced: list[str] = field(default_factory=list)  # the uses that force=True let through


@dataclass(frozen=True)
class ViewVersion:
    """One stored version of a feature view."""

    name: str
    version: int
    kind: str
    definition: dict[str, Any]
    digest: str
    owner: str
    created_by: str
    created_at: int


def _view_version(row: Any) -> ViewVersion:
    return ViewVersion(
        row.name,
        row.version,
        row.kind,
        json.loads(row.definition),
        row.digest,
        row.owner,
        row.created_by,
        row.created_at,
    )


class FeatureRegistry(RegistryBackend):
    """Entities, feature view versions and feature services of one project (SQL)."""

    def __init__(self, db: Database, *, project_id: int = 0, actor: str = "local") -> None:
        self.db, self.project_id, self.actor = db, project_id, actor

    # -- reads ----------------------------------------------------------------------------
    def entity(self, name: str) -> Entity:
        row = self.db.read(
            lambda c: c.execute(
                select(ENT).where(ENT.c.project_id == self.project_id, ENT.c.name == name)
            ).first()
        )
        if row is None:
            known = ", ".join(e.name for e in self.entities()) or "none"
            raise NotFound(f"no entity named {name!r}; registered entities: {known}")
        return Entity(row.name, json.loads(row.join_keys), row.description, row.owner)

    def entities(self) -> list[Entity]:
        rows = self.db.read(
            lambda c: c.execute(
                select(ENT).where(ENT.c.project_id == self.project_id).order_by(ENT.c.name)
            ).all()
        )
        return [Entity(r.name, json.loads(r.join_keys), r.description, r.owner) for r in rows]

    def view_version(self, name: str, version: int | None = None) -> ViewVersion:
        def run(conn: Connection) -> Any:
            q = select(FV).where(
                FV.c.project_id == self.project_id, FV.c.name == name, FV.c.kind != SERVICE_KIND
            )
            if version is not None:
                q = q.where(FV.c.version == int(version))
            return conn.execute(q.order_by(FV.c.version.desc()).limit(1)).first()

        check_version(version)
        row = self.db.read(run)
        if row is None:
            names = self.view_names()
            if version is not None and name in names:
                raise NotFound(f"feature view {name!r} has no version {version}")
            raise NotFound(
                f"no feature view named {name!r}; registered feature views: "
                f"{', '.join(names) or 'none'}"
            )
        return _view_version(row)

    def view_names(self) -> list[str]:
        return list(
            self.db.read(
                lambda c: (
                    c.execute(
                        select(FV.c.name)
                        .where(FV.c.project_id == self.project_id, FV.c.kind != SERVICE_KIND)
                        .distinct()
                        .order_by(FV.c.name)
                    )
                    .scalars()
                    .all()
                )
            )
        )

    def latest_versions(self) -> list[ViewVersion]:
        """The newest version of every feature view, by name."""
        return self._latest(kind_is_service=False)

    def _latest(self, *, kind_is_service: bool) -> list[ViewVersion]:
        kind = FV.c.kind == SERVICE_KIND if kind_is_service else FV.c.kind != SERVICE_KIND

        def run(conn: Connection) -> list[Any]:
            latest = (
                select(FV.c.name, func.max(FV.c.version).label("v"))
                .where(FV.c.project_id == self.project_id)
                .group_by(FV.c.name)
                .subquery()
            )
            return list(
                conn.execute(
                    select(FV)
                    .join(latest, (FV.c.name == latest.c.name) & (FV.c.version == latest.c.v))
                    .where(FV.c.project_id == self.project_id, kind)
                    .order_by(FV.c.name)
                ).all()
            )

        return [_view_version(r) for r in self.db.read(run)]

    def versions(self, name: str) -> list[ViewVersion]:
        rows = self.db.read(
            lambda c: c.execute(
                select(FV)
                .where(
                    FV.c.project_id == self.project_id,
                    FV.c.name == name,
                    FV.c.kind != SERVICE_KIND,
                )
                .order_by(FV.c.version)
            ).all()
        )
        if not rows:
            self.view_version(name)  # NotFound listing what exists
        return [_view_version(r) for r in rows]

    # -- apply ----------------------------------------------------------------------------
    def apply(self, objs: list[Any], *, force: bool = False) -> list[AppliedDefinition]:
        """Register entities, feature views and services; see the module docstring."""
        batch = self.prepare(objs)
        results: list[AppliedDefinition] = []
        for ent in batch.entities.values():
            results.append(self._apply_entity(ent, force))
        all_views: list[FeatureView | OnDemandFeatureView] = [*batch.views, *batch.odfvs]
        for view in all_views:
            results.append(self._apply_view(view, force))
        for svc in batch.services:
            results.append(self._apply_service(svc, {v.name: v for v in all_views}))
        return results

    def _apply_entity(self, ent: Entity, force: bool) -> AppliedDefinition:
        forced: list[str] = []

        def run(conn: Connection) -> AppliedDefinition:
            row = conn.execute(
                select(ENT).where(ENT.c.project_id == self.project_id, ENT.c.name == ent.name)
            ).first()
            now = _now_ms()
            values = {
                "join_keys": json.dumps(ent.join_keys),
                "description": ent.description,
                "owner": ent.owner,
            }
            if row is None:
                conn.execute(
                    ENT.insert().values(
                        project_id=self.project_id,
                        name=ent.name,
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                )
                return AppliedDefinition("entity", ent.name, 1, True, [])
            if all(getattr(row, k) == v for k, v in values.items()):
                return AppliedDefinition("entity", ent.name, 1, False, [])
            old_keys = json.loads(row.join_keys)
            if old_keys != ent.join_keys:
                msg = (
                    f"entity {ent.name!r} changes its join keys from {old_keys} to "
                    f"{ent.join_keys}: feature views and trained models join on them"
                )
                if not force:
                    raise Conflict(msg + "; apply with force=True (--force) to change them anyway")
                forced.append(msg)
            conn.execute(
                ENT.update()
                .where(ENT.c.project_id == self.project_id, ENT.c.name == ent.name)
                .values(updated_at=now, **values)
            )
            return AppliedDefinition("entity", ent.name, 1, True, forced)

        unchanged = self.db.read(lambda c: _entity_unchanged(c, self.project_id, ent))
        if unchanged:
            return AppliedDefinition("entity", ent.name, 1, False, [])
        return cast(
            AppliedDefinition,
            self.db.write(
                run,
                actor=self.actor,
                action="feature_entity.force_apply" if force else "feature_entity.apply",
                object_type="feature_entity",
                object_id=ent.name,
                payload={"definition": ent.to_dict(), "forced": forced},
                project_id=self.project_id,
            ),
        )

    def _apply_service(
        self, svc: FeatureService, batch: dict[str, FeatureView | OnDemandFeatureView]
    ) -> AppliedDefinition:
        """Store a feature service; each feature it names must exist (in the batch or stored)."""
        for vname in svc.view_names:
            view = batch.get(vname) or self.definition(vname)  # NotFound lists the views
            for ref in svc.features:
                v, _, f = ref.partition(":")
                if v == vname and f != "*" and f not in view.feature_names:
                    raise NotFound(
                        f"feature service {svc.name!r} names {ref!r}, but feature view "
                        f"{vname!r} has no feature {f!r}; its features: "
                        f"{', '.join(view.feature_names) or 'none'}"
                    )
        return self._apply_view(svc, False)

    def _apply_view(
        self, view: FeatureView | OnDemandFeatureView | FeatureService, force: bool
    ) -> AppliedDefinition:
        kind = (
            "batch"
            if isinstance(view, FeatureView)
            else SERVICE_KIND
            if isinstance(view, FeatureService)
            else "on_demand"
        )
        label = {"batch": "feature_view", SERVICE_KIND: "feature_service"}.get(
            kind, "on_demand_feature_view"
        )
        definition = view.to_dict()
        digest = view.digest
        latest = self.db.read(
            lambda c: c.execute(
                select(FV)
                .where(FV.c.project_id == self.project_id, FV.c.name == view.name)
                .order_by(FV.c.version.desc())
                .limit(1)
            ).first()
        )
        if latest is not None and latest.digest == digest:
            return AppliedDefinition(label, view.name, latest.version, False, [])
        if latest is not None and (latest.kind == SERVICE_KIND) != (kind == SERVICE_KIND):
            taken = "feature service" if latest.kind == SERVICE_KIND else "feature view"
            raise Conflict(
                f"the name {view.name!r} is taken by a {taken}; feature views and feature "
                "services share one namespace, so pick another name"
            )
        breaking: list[str] = []
        notes: list[str] = []
        if latest is not None:
            old_names = [f["name"] for f in json.loads(latest.definition).get("schema", [])]
            new_names = [f["name"] for f in definition.get("schema", [])]
            removed = [n for n in old_names if n not in new_names]
            used = self.models_using(view.name, removed) if removed else {}
            notes = [
                f"feature {view.name}:{n} is removed (no registered model version uses it)"
                for n in removed
                if f"{view.name}:{n}" not in used
            ]
            if latest.kind != kind:
                breaking.append(
                    f"{view.name!r} is registered as a {latest.kind} view and "
                    f"would become a {kind} view"
                )
            breaking += self.breaking_changes(json.loads(latest.definition), definition)
        if breaking and not force:
            raise Conflict(
                f"feature view {view.name!r} cannot change that way: "
                + "; ".join(breaking)
                + ". Keep the old features (add new ones beside them), or apply "
                "with force=True (--force) to change anyway"
            )
        audit_type = "feature_service" if kind == SERVICE_KIND else "feature_view"
        payload = {
            "definition": definition,
            "digest": digest,
            "forced": breaking,
            "force": bool(force and breaking),
            "warnings": notes,
        }

        def run(conn: Connection) -> AppliedDefinition:
            current = conn.execute(
                select(func.max(FV.c.version)).where(
                    FV.c.project_id == self.project_id, FV.c.name == view.name
                )
            ).scalar()
            version = int(current or 0) + 1
            conn.execute(
                FV.insert().values(
                    project_id=self.project_id,
                    name=view.name,
                    version=version,
                    kind=kind,
                    definition=json.dumps(definition, sort_keys=True, default=str),
                    digest=digest,
                    owner=getattr(view, "owner", ""),
                    created_by=self.actor,
                    created_at=_now_ms(),
                )
            )
            return AppliedDefinition(label, view.name, version, True, breaking, notes)

        return cast(
            AppliedDefinition,
            self.db.write(
                run,
                actor=self.actor,
                action=f"{audit_type}.force_apply" if breaking else f"{audit_type}.apply",
                object_type=audit_type,
                object_id=view.name,
                payload=payload,
                project_id=self.project_id,
            ),
        )

    def breaking_changes(self, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        """Why going from ``old`` to ``new`` (definition dicts) would break users."""
        old_types = {f["name"]: f["dtype"] for f in old.get("schema", [])}
        new_types = {f["name"]: f["dtype"] for f in new.get("schema", [])}
        out = [
            f"feature {n!r} changes type from {old_types[n]} to {new_types[n]}"
            for n in old_types
            if n in new_types and new_types[n] != old_types[n]
        ]
        removed = [n for n in old_types if n not in new_types]
        if removed:
            users = self.models_using(new["name"], removed)
            for ref, models in sorted(users.items()):
                out.append(
                    f"feature {ref!r} is removed but model version"
                    f"{'s' if len(models) > 1 else ''} {', '.join(models)} use it"
                )
        return out

    def models_using(self, view: str, features: list[str]) -> dict[str, list[str]]:
        """``{"view:feature": ["model/3", ...]}`` for the given features that models use."""
        return self._models_by_lineage("feature", [f"{view}:{f}" for f in features])

    def models_using_view(self, view: str) -> list[str]:
        """``["model/3", ...]``: model versions whose training set read the view."""
        return self._models_by_lineage("feature_view", [view]).get(view, [])

    def _models_by_lineage(self, src_type: str, ids: list[str]) -> dict[str, list[str]]:
        """``{id: ["model/3", ...]}``: model versions logged from runs that took a
        training set linked to ``src_type:id`` as input (see the module docstring)."""
        wanted = set(ids)

        def run(conn: Connection) -> dict[str, list[str]]:
            out: dict[str, set[str]] = {}
            edges = conn.execute(
                select(EDGES.c.src_id, EDGES.c.dst_id).where(
                    EDGES.c.src_type == src_type,
                    EDGES.c.src_id.in_(sorted(wanted)),
                    EDGES.c.dst_type == "dataset_version",
                )
            ).all()
            by_dataset: dict[str, set[str]] = {}
            for ref, target in edges:
                by_dataset.setdefault(str(target), set()).add(str(ref))
            for target, refs in sorted(by_dataset.items()):
                name, _, ver = target.rpartition("/")
                dataset_ids = (
                    conn.execute(
                        select(DS.c.dataset_id).where(DS.c.source == f"dataset:{name}/{ver}")
                    )
                    .scalars()
                    .all()
                )
                if not dataset_ids:
                    continue
                run_ids = (
                    conn.execute(select(RI.c.run_id).where(RI.c.dataset_id.in_(dataset_ids)))
                    .scalars()
                    .all()
                )
                if not run_ids:
                    continue
                for m in conn.execute(
                    select(RM.c.name, MV.c.version)
                    .join(RM, RM.c.model_id == MV.c.model_id)
                    .where(MV.c.run_id.in_(run_ids), RM.c.project_id == self.project_id)
                ):
                    for ref in refs:
                        out.setdefault(ref, set()).add(f"{m.name}/{m.version}")
            return {k: sorted(v) for k, v in out.items()}

        return cast(dict[str, list[str]], self.db.read(run))

    # -- delete -----------------------------------------------------------------------------
    def delete(self, name: str, *, force: bool = False) -> DeletedDefinition:
        """Delete every version of feature view (or service) ``name``, audited.

        Refused with ``Conflict`` while a registered model version's training set read the
        view, or a feature service or on-demand view names it, unless ``force``. The view's
        materialization records go with it (a new view of that name starts afresh).
        """
        from loopstack.store.metadata.schema import Materialization

        rows = self.db.read(
            lambda c: c.execute(
                select(FV)
                .where(FV.c.project_id == self.project_id, FV.c.name == name)
                .order_by(FV.c.version.desc())
            ).all()
        )
        if not rows:
            known = [v.name for v in self._latest(kind_is_service=False)]
            known += [s.name for s in self.services()]
            raise NotFound(
                f"no feature view or feature service named {name!r}; registered: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
        latest = rows[0]
        label = {"batch": "feature_view", SERVICE_KIND: "feature_service"}.get(
            latest.kind, "on_demand_feature_view"
        )
        uses: list[str] = []
        if latest.kind != SERVICE_KIND:
            models = self.models_using_view(name)
            if models:
                uses.append(
                    f"the training set{'s' if len(models) > 1 else ''} of model version"
                    f"{'s' if len(models) > 1 else ''} {', '.join(models)} read it"
                )
            for other in self._latest(kind_is_service=False) + self._latest(kind_is_service=True):
                d = other.definition
                if other.kind == SERVICE_KIND and name in [
                    str(r).partition(":")[0] for r in d.get("features", [])
                ]:
                    uses.append(f"feature service {other.name!r} names it")
                elif other.kind == "on_demand" and name in [
                    s.get("name") for s in d.get("sources", [])
                ]:
                    uses.append(f"on-demand feature view {other.name!r} reads it")
        if uses and not force:
            raise Conflict(
                f"{label.replace('_', ' ')} {name!r} is in use: {'; '.join(uses)}. Delete "
                "the feature services and views that use it first, or delete with "
                "force=True (--force) anyway"
            )
        MAT = cast(Table, Materialization.__table__)
        audit_type = "feature_service" if latest.kind == SERVICE_KIND else "feature_view"

        def run(conn: Connection) -> DeletedDefinition:
            conn.execute(FV.delete().where(FV.c.project_id == self.project_id, FV.c.name == name))
            if latest.kind != SERVICE_KIND:
                conn.execute(
                    MAT.delete().where(MAT.c.project_id == self.project_id, MAT.c.view_name == name)
                )
            return DeletedDefinition(label, name, len(rows), uses)

        return cast(
            DeletedDefinition,
            self.db.write(
                run,
                actor=self.actor,
                action=f"{audit_type}.force_delete" if uses else f"{audit_type}.delete",
                object_type=audit_type,
                object_id=name,
                payload={
                    "versions": [r.version for r in rows],
                    "digest": latest.digest,
                    "definition": json.loads(latest.definition),
                    "forced": uses,
                },
                project_id=self.project_id,
            ),
        )

    # -- feature services -------------------------------------------------------------------
    def service(self, name: str) -> FeatureService:
        """The newest version of feature service ``name``."""
        row = self.db.read(
            lambda c: c.execute(
                select(FV)
                .where(
                    FV.c.project_id == self.project_id,
                    FV.c.name == name,
                    FV.c.kind == SERVICE_KIND,
                )
                .order_by(FV.c.version.desc())
                .limit(1)
            ).first()
        )
        if row is None:
            known = ", ".join(s.name for s in self.services()) or "none"
            raise NotFound(f"no feature service named {name!r}; registered services: {known}")
        return FeatureService.from_dict(json.loads(row.definition))

    def services(self) -> list[FeatureService]:
        """The newest version of every feature service, by name."""
        return [FeatureService.from_dict(v.definition) for v in self._latest(kind_is_service=True)]


def _entity_unchanged(conn: Connection, project_id: int, ent: Entity) -> bool:
    row = conn.execute(
        select(ENT).where(ENT.c.project_id == project_id, ENT.c.name == ent.name)
    ).first()
    return (
        row is not None
        and json.loads(row.join_keys) == ent.join_keys
        and row.description == ent.description
        and row.owner == ent.owner
    )
