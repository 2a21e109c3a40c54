"""The model registry over the SQL metadata store.

Every change is audited in its own transaction. Alias moves lock the model's
row first, so two concurrent moves are serialised (no lost update) on SQLite
(BEGIN IMMEDIATE) and PostgreSQL (SELECT ... FOR UPDATE) alike.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select, update

from loopstack.errors import AlreadyExists, Conflict, Invalid, NotFound, Tampered
from loopstack.registry._aliases import Aliases
from loopstack.registry._approvals import Approvals
from loopstack.registry._entities import (
    ModelVersion,
    RegisteredModel,
    validate_model_name,
)
from loopstack.registry._in_use import deployments_using
from loopstack.registry._lineage import LineageGraph, lineage, node_id
from loopstack.registry._store import RegistryStore
from loopstack.store import Stores
from loopstack.store.metadata._lineage_edges import add_edges
from loopstack.store.metadata.schema import (
    AliasMove as AliasMoveRow,
)
from loopstack.store.metadata.schema import (
    ApprovalRequest as ApprovalRow,
)
from loopstack.store.metadata.schema import (
    ModelAlias,
    ModelVersionTag,
    Project,
    RegisteredModelTag,
)
from loopstack.store.metadata.schema import (
    ModelVersion as VersionRow,
)
from loopstack.store.metadata.schema import (
    RegisteredModel as ModelRow,
)
from loopstack.tracking._entities import clean_tags, now_ms

__all__ = ["DEFAULT_POLICY", "SqlRegistry", "package_digest"]

RM, RMT = cast(Table, ModelRow.__table__), cast(Table, RegisteredModelTag.__table__)
MV, MVT = cast(Table, VersionRow.__table__), cast(Table, ModelVersionTag.__table__)
AL, MOVES = cast(Table, ModelAlias.__table__), cast(Table, AliasMoveRow.__table__)
AP = cast(Table, ApprovalRow.__table__)
PR = cast(Table, Project.__table__)

DEFAULT_POLICY: dict[str, Any] = {
    "protected_aliases": ["production"],
    "allow_self_approval": False,
    "auto_approve_when_gates_pass": False,
}


def package_digest(files: dict[str, str]) -> str:
    """One sha256 for a whole model package: over its sorted (path, file digest) pairs."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\x1f{files[path]}\n".encode())
    return h.hexdigest()


#: the events that sign a version's record: its registration, and each rename after it
_ATTESTING = ("model_version.create", "model_version.rename")


def _registered(source: str, digest: str, run_id: str | None) -> dict[str, Any]:
    """The payload a version's registration event signs (``_check_registration`` redoes it)."""
    return {"source": source, "digest": digest, "run_id": run_id}


class SqlRegistry(Aliases, Approvals, RegistryStore):
    """Registered models, versions, aliases (with history), approvals and lineage edges."""

    def __init__(self, stores: Stores, *, actor: str = "local", project_id: int = 0) -> None:
        self.stores = stores
        self.db = stores.db
        self.actor = actor
        self.project_id = project_id

    def _write(self, fn: Any, action: str, object_id: Any, payload: Any = None) -> Any:
        return self.db.write(
            fn,
            actor=self.actor,
            action=action,
            object_type="model",
            object_id=object_id,
            payload=payload,
            project_id=self.project_id,
        )

    # -- lookups --------------------------------------------------------------------
    def _model_row(self, conn: Connection, name: str, *, lock: bool = False) -> Any:
        q = select(RM).where(RM.c.project_id == self.project_id, RM.c.name == name)
        if lock:
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"no registered model named {name!r}")
        return row

    def _version_row(self, conn: Connection, model_id: int, name: str, version: Any) -> Any:
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise Invalid(
                f"a model version must be an integer; got {version!r} instead", field="version"
            ) from None
        row = conn.execute(
            select(MV).where(MV.c.model_id == model_id, MV.c.version == number)
        ).first()
        if row is None:
            raise NotFound(f"model {name!r} has no version {number}")
        return row

    def _policy(self, conn: Connection, project_id: int) -> dict[str, Any]:
        raw = conn.execute(select(PR.c.policy).where(PR.c.project_id == project_id)).scalar()
        policy = dict(DEFAULT_POLICY)
        policy.update(json.loads(raw or "{}"))
        return policy

    def _model(self, conn: Connection, row: Any) -> RegisteredModel:
        tags = dict(
            conn.execute(select(RMT.c.key, RMT.c.value).where(RMT.c.model_id == row.model_id)).all()
        )
        aliases = dict(
            conn.execute(
                select(AL.c.alias, AL.c.version).where(AL.c.model_id == row.model_id)
            ).all()
        )
        latest = conn.execute(
            select(func.max(MV.c.version)).where(MV.c.model_id == row.model_id)
        ).scalar()
        return RegisteredModel(
            row.name,
            row.description,
            row.created_by,
            row.created_at,
            row.updated_at,
            row.project_id,
            tags,
            aliases,
            latest,
        )

    def _versions(self, conn: Connection, name: str, rows: list[Any]) -> list[ModelVersion]:
        keys = [(r.model_id, r.version) for r in rows]
        tags: dict[tuple[int, int], dict[str, str]] = defaultdict(dict)
        aliases: dict[tuple[int, int], list[str]] = defaultdict(list)
        model_ids = {k[0] for k in keys}
        if model_ids:
            for t in conn.execute(select(MVT).where(MVT.c.model_id.in_(model_ids))):
                tags[(t.model_id, t.version)][t.key] = t.value
            for a in conn.execute(
                select(AL).where(AL.c.model_id.in_(model_ids)).order_by(AL.c.alias)
            ):
                aliases[(a.model_id, a.version)].append(a.alias)
        lookup: dict[int, str] = {}
        if not name and model_ids:  # versions of several models: look their names up
            lookup = dict(
                conn.execute(
                    select(RM.c.model_id, RM.c.name).where(RM.c.model_id.in_(model_ids))
                ).all()
            )
        return [
            ModelVersion(
                name or lookup[r.model_id],
                r.version,
                r.flavor,
                r.source,
                json.loads(r.files),
                r.digest,
                json.loads(r.signature),
                json.loads(r.requirements),
                r.run_id,
                r.code_version,
                r.description,
                r.status,
                r.approval_state,
                r.onnx_max_abs_diff,
                r.created_by,
                r.created_at,
                r.updated_at,
                tags[(r.model_id, r.version)],
                aliases[(r.model_id, r.version)],
            )
            for r in rows
        ]

    # -- registered models ----------------------------------------------------------
    def create_registered_model(
        self, name: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> RegisteredModel:
        name = validate_model_name(name)
        tag_rows = clean_tags(tags)

        def run(conn: Connection) -> RegisteredModel:
            if conn.execute(
                select(RM.c.model_id).where(RM.c.project_id == self.project_id, RM.c.name == name)
            ).first():
                raise AlreadyExists(f"a registered model named {name!r} already exists")
            now = now_ms()
            model_id = conn.execute(
                RM.insert()
                .values(
                    project_id=self.project_id,
                    name=name,
                    description=description,
                    created_by=self.actor,
                    created_at=now,
                    updated_at=now,
                )
                .returning(RM.c.model_id)
            ).scalar_one()
            if tag_rows:
                conn.execute(
                    RMT.insert(),
                    [{"model_id": model_id, "key": k, "value": v} for k, v in tag_rows.items()],
                )
            return self._model(conn, self._model_row(conn, name))

        return cast(
            RegisteredModel,
            self._write(run, "model.create", name, {"description": description, "tags": tag_rows}),
        )

    def get_registered_model(self, name: str) -> RegisteredModel:
        return cast(
            RegisteredModel, self.db.read(lambda c: self._model(c, self._model_row(c, name)))
        )

    def search_registered_models(
        self, *, name_like: str | None = None, max_results: int = 1000
    ) -> list[RegisteredModel]:
        def run(conn: Connection) -> list[RegisteredModel]:
            q = select(RM).where(RM.c.project_id == self.project_id)
            if name_like:
                q = q.where(RM.c.name.like(name_like))
            rows = conn.execute(q.order_by(RM.c.name).limit(max_results)).all()
            return [self._model(conn, r) for r in rows]

        return cast(list[RegisteredModel], self.db.read(run))

    def update_registered_model(
        self, name: str, *, description: str | None = None, new_name: str | None = None
    ) -> RegisteredModel:
        if new_name is not None:
            validate_model_name(new_name)

        def run(conn: Connection) -> RegisteredModel:
            row = self._model_row(conn, name, lock=True)
            values: dict[str, Any] = {"updated_at": now_ms()}
            if description is not None:
                values["description"] = description
            if new_name is not None and new_name != name:
                if conn.execute(
                    select(RM.c.model_id).where(
                        RM.c.project_id == self.project_id, RM.c.name == new_name
                    )
                ).first():
                    raise AlreadyExists(f"a registered model named {new_name!r} already exists")
                values["name"] = new_name
                self._carry_over(conn, row.model_id, name, new_name)
            conn.execute(update(RM).where(RM.c.model_id == row.model_id).values(**values))
            return self._model(conn, self._model_row(conn, values.get("name", name)))

        return cast(
            RegisteredModel,
            self._write(
                run, "model.update", name, {"description": description, "new_name": new_name}
            ),
        )

    def delete_registered_model(self, name: str) -> None:
        def run(conn: Connection) -> None:
            row = self._model_row(conn, name, lock=True)
            serving = deployments_using(conn, self.project_id, name)
            if serving:
                raise Conflict(
                    f"model {name!r} cannot be deleted: deployment(s) {serving} serve it; "
                    "move their arms to another model or delete them first"
                )
            for table in (MVT, MOVES, AP, AL, MV, RMT):
                conn.execute(delete(table).where(table.c.model_id == row.model_id))
            conn.execute(delete(RM).where(RM.c.model_id == row.model_id))

        self._write(run, "model.delete", name, {"deleted": name})

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        ((key, value),) = clean_tags({key: value}).items()

        def run(conn: Connection) -> None:
            row = self._model_row(conn, name)
            stmt = self.db.insert(RMT).values(model_id=row.model_id, key=key, value=value)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_id", "key"], set_={"value": value}
                )
            )

        self._write(run, "model.set_tag", name, {key: value})

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        def run(conn: Connection) -> None:
            row = self._model_row(conn, name)
            if not conn.execute(
                delete(RMT).where(RMT.c.model_id == row.model_id, RMT.c.key == key)
            ).rowcount:
                raise NotFound(f"model {name!r} has no tag {key!r}")

        self._write(run, "model.delete_tag", name, {"key": key})

    # -- versions -------------------------------------------------------------------
    def create_model_version(
        self,
        name: str,
        *,
        source: str,
        files: dict[str, str],
        flavor: str = "unknown",
        signature: dict[str, Any] | None = None,
        requirements: list[str] | None = None,
        run_id: str | None = None,
        code_version: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        onnx_max_abs_diff: float | None = None,
        parents: list[tuple[str, int]] | None = None,
        create_model: bool = True,
    ) -> ModelVersion:
        """Register a new version of ``name`` (the model is created on first use)."""
        name = validate_model_name(name)
        tag_rows = clean_tags(tags)
        if not isinstance(files, dict):
            raise Invalid(
                f"files must map paths to sha256 digests; got {type(files).__name__}", field="files"
            )
        digest = package_digest(files)

        def run(conn: Connection) -> ModelVersion:
            row = conn.execute(
                select(RM)
                .where(RM.c.project_id == self.project_id, RM.c.name == name)
                .with_for_update()
            ).first()
            now = now_ms()
            if row is None:
                if not create_model:
                    raise NotFound(f"no registered model named {name!r}")
                conn.execute(
                    RM.insert().values(
                        project_id=self.project_id,
                        name=name,
                        description="",
                        created_by=self.actor,
                        created_at=now,
                        updated_at=now,
                    )
                )
                row = self._model_row(conn, name, lock=True)
            if run_id is not None:
                from loopstack.store.metadata.schema import Run

                if conn.execute(select(Run.run_id).where(Run.run_id == run_id)).first() is None:
                    raise NotFound(f"no run with id {run_id!r}")
            number = (
                conn.execute(
                    select(func.max(MV.c.version)).where(MV.c.model_id == row.model_id)
                ).scalar()
                or 0
            ) + 1
            conn.execute(
                MV.insert().values(
                    model_id=row.model_id,
                    version=number,
                    flavor=flavor,
                    source=source,
                    files=json.dumps(files, sort_keys=True),
                    digest=digest,
                    signature=json.dumps(signature or {}, sort_keys=True),
                    requirements=json.dumps(requirements or []),
                    run_id=run_id,
                    code_version=code_version,
                    description=description,
                    status="READY",
                    approval_state="none",
                    onnx_max_abs_diff=onnx_max_abs_diff,
                    created_by=self.actor,
                    created_at=now,
                    updated_at=now,
                )
            )
            if tag_rows:
                conn.execute(
                    MVT.insert(),
                    [
                        {"model_id": row.model_id, "version": number, "key": k, "value": v}
                        for k, v in tag_rows.items()
                    ],
                )
            conn.execute(update(RM).where(RM.c.model_id == row.model_id).values(updated_at=now))
            target = f"{name}/{number}"
            edges = []
            if run_id:
                edges.append(("run", run_id, "model_version", target, "produced"))
            for parent_name, parent_version in parents or []:
                edges.append(
                    (
                        "model_version",
                        f"{parent_name}/{int(parent_version)}",
                        "model_version",
                        target,
                        "parent",
                    )
                )
            add_edges(conn, edges, now_ms=now)
            return self._versions(
                conn, name, [self._version_row(conn, row.model_id, name, number)]
            )[0]

        return cast(
            ModelVersion,
            self._write(
                run,
                "model_version.create",
                lambda v: f"{name}/{v.version}",
                _registered(source, digest, run_id),
            ),
        )

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        def run(conn: Connection) -> ModelVersion:
            model = self._model_row(conn, name)
            return self._versions(
                conn, name, [self._version_row(conn, model.model_id, name, version)]
            )[0]

        return cast(ModelVersion, self.db.read(run))

    def get_verified_model_version(self, name: str, version: int | str) -> ModelVersion:
        mv = self.get_model_version(name, version)
        self._check_registration(mv)
        return mv

    def _check_registration(
        self,
        mv: ModelVersion,
        conn: Connection | None = None,
        *,
        refused: str = "nothing was loaded",
    ) -> None:
        """Raise ``Tampered`` unless ``mv``'s record is what its audited registration
        event (or, after a rename, the event that carried it over) signed: one indexed
        lookup and one HMAC."""
        from loopstack.store import audit

        what = f"model {mv.name!r} v{mv.version}"
        ev = audit.latest_event(
            conn if conn is not None else self.db,
            object_type="model",
            object_id=f"{mv.name}/{mv.version}",
            actions=_ATTESTING,
            project_id=self.project_id,
        )
        if ev is None:
            raise Tampered(
                f"{what} has no audited registration event (model_version.create): its record "
                f"was made or changed outside loopstack; {refused}"
            )
        bad = audit.check_event(ev, self.db.audit_keys)
        if bad:
            raise Tampered(
                f"{what}: the audit event of its registration (event {ev.seq}) is not "
                f"authentic: {bad}; {refused}"
            )
        now = package_digest(mv.files)
        if audit.digest_of(_registered(mv.source, now, mv.run_id)) == ev.digest:
            return
        if (
            now != mv.digest
            and audit.digest_of(_registered(mv.source, mv.digest, mv.run_id)) == ev.digest
        ):
            changed = "its files' digests differ from the package digest recorded with them"
        else:
            changed = (
                "its files' digests (or its source or run) differ from those recorded when "
                "it was registered"
            )
        raise Tampered(
            f"{what}: {changed} (audit event {ev.seq}): the package was changed after "
            f"registration; {refused}",
            field="files",
        )

    def _carry_over(self, conn: Connection, model_id: int, name: str, new_name: str) -> None:
        """On a rename, re-sign each version's record under its new name, once it is
        checked against what was signed under the old one."""
        from loopstack.store import audit

        rows = conn.execute(select(MV).where(MV.c.model_id == model_id)).all()
        for mv in self._versions(conn, name, list(rows)):
            self._check_registration(mv, conn, refused="the rename was refused")
            audit.append(
                conn,
                keys=self.db.audit_keys,
                actor=self.actor,
                action="model_version.rename",
                object_type="model",
                object_id=f"{new_name}/{mv.version}",
                payload=_registered(mv.source, package_digest(mv.files), mv.run_id),
                project_id=self.project_id,
            )

    def search_model_versions(
        self, *, name: str | None = None, run_id: str | None = None, max_results: int = 1000
    ) -> list[ModelVersion]:
        def run(conn: Connection) -> list[ModelVersion]:
            q = (
                select(MV)
                .join(RM, RM.c.model_id == MV.c.model_id)
                .where(RM.c.project_id == self.project_id)
            )
            if name is not None:
                q = q.where(RM.c.name == name)
            if run_id is not None:
                q = q.where(MV.c.run_id == run_id)
            rows = conn.execute(
                q.order_by(MV.c.model_id, MV.c.version.desc()).limit(max_results)
            ).all()
            return self._versions(conn, "", list(rows))

        return cast(list[ModelVersion], self.db.read(run))

    def update_model_version(
        self, name: str, version: int | str, *, description: str | None = None
    ) -> ModelVersion:
        def run(conn: Connection) -> ModelVersion:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model.model_id, name, version)
            if description is not None:
                conn.execute(
                    update(MV)
                    .where(MV.c.model_id == model.model_id, MV.c.version == row.version)
                    .values(description=description, updated_at=now_ms())
                )
            return self._versions(
                conn, name, [self._version_row(conn, model.model_id, name, row.version)]
            )[0]

        return cast(
            ModelVersion,
            self._write(
                run, "model_version.update", f"{name}/{version}", {"description": description}
            ),
        )

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: str) -> None:
        ((key, value),) = clean_tags({key: value}).items()

        def run(conn: Connection) -> None:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model.model_id, name, version)
            stmt = self.db.insert(MVT).values(
                model_id=model.model_id, version=row.version, key=key, value=value
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_id", "version", "key"], set_={"value": value}
                )
            )

        self._write(run, "model_version.set_tag", f"{name}/{version}", {key: value})

    def delete_model_version_tag(self, name: str, version: int | str, key: str) -> None:
        def run(conn: Connection) -> None:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model.model_id, name, version)
            if not conn.execute(
                delete(MVT).where(
                    MVT.c.model_id == model.model_id, MVT.c.version == row.version, MVT.c.key == key
                )
            ).rowcount:
                raise NotFound(f"model {name!r} version {row.version} has no tag {key!r}")

        self._write(run, "model_version.delete_tag", f"{name}/{version}", {"key": key})

    # -- lineage --------------------------------------------------------------------
    def lineage(self, obj: Any) -> LineageGraph:
        """The lineage of a node; a model version or run outside this project is NotFound."""
        node = node_id(obj)
        kind, _, ident = node.partition(":")
        if kind == "model_version":
            name, _, version = ident.rpartition("/")
            self.get_model_version(name, version)
        elif kind == "run":
            self.db.read(lambda conn: self._run_in_project(conn, ident))
        return lineage(self.db, node)

    def _run_in_project(self, conn: Connection, run_id: str) -> None:
        from loopstack.store.metadata.schema import Experiment, Run

        found = conn.execute(
            select(Run.run_id)
            .join(Experiment, Experiment.experiment_id == Run.experiment_id)
            .where(Run.run_id == run_id, Experiment.project_id == self.project_id)
        ).first()
        if found is None:
            raise NotFound(f"no run with id {run_id!r}")
