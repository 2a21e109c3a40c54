"""Experiments in the SQL tracking store: create, read, search, tag, delete."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, and_, select, update
from sqlalchemy.exc import IntegrityError

from loopstack.errors import AlreadyExists, Invalid, NotFound
from loopstack.tracking._entities import (
    Experiment,
    clean_tags,
    now_ms,
)
from loopstack.tracking._sql_base import (
    ET,
    E,
    R,
    SqlStoreBase,
    _experiment_id,
    _view,
)

__all__ = ["SqlExperiments"]


class SqlExperiments(SqlStoreBase):
    """The experiment verbs of ``SqlTrackingStore``."""

    # -- experiments ----------------------------------------------------------------
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        if not isinstance(name, str) or not name.strip():
            raise Invalid(
                f"an experiment name must be a non-empty string; got {name!r}", field="name"
            )
        if len(name) > 256:
            raise Invalid(
                f"an experiment name must be at most 256 characters; got {len(name)}", field="name"
            )
        tag_rows = clean_tags(tags)

        def run(conn: Connection) -> str:
            if conn.execute(
                select(E.c.experiment_id).where(
                    E.c.name == name, E.c.project_id == (self.project_id or 0)
                )
            ).first():
                raise AlreadyExists(f"an experiment named {name!r} already exists")
            now = now_ms()
            eid = conn.execute(
                E.insert()
                .values(
                    name=name,
                    project_id=self.project_id or 0,
                    artifact_location=artifact_location or "",
                    lifecycle_stage="active",
                    creation_time=now,
                    last_update_time=now,
                )
                .returning(E.c.experiment_id)
            ).scalar_one()
            if not artifact_location:
                conn.execute(
                    update(E).where(E.c.experiment_id == eid).values(artifact_location=str(eid))
                )
            if tag_rows:
                conn.execute(
                    ET.insert(),
                    [{"experiment_id": eid, "key": k, "value": v} for k, v in tag_rows.items()],
                )
            return str(eid)

        try:
            return str(
                self._write(
                    run,
                    "experiment.create",
                    "experiment",
                    lambda eid: eid,
                    {"name": name, "tags": tag_rows},
                )
            )
        except IntegrityError as exc:  # a concurrent create won the race
            raise AlreadyExists(f"an experiment named {name!r} already exists") from exc

    def _experiments(
        self, conn: Connection, where: Any, limit: int | None = None
    ) -> list[Experiment]:
        q = select(E).where(self._in_project(where)).order_by(E.c.experiment_id)
        if limit:
            q = q.limit(limit)
        rows = conn.execute(q).all()
        ids = [r.experiment_id for r in rows]
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        if ids:
            for t in conn.execute(select(ET).where(ET.c.experiment_id.in_(ids))):
                tags[t.experiment_id][t.key] = t.value
        return [
            Experiment(
                str(r.experiment_id),
                r.name,
                r.artifact_location,
                r.lifecycle_stage,
                r.creation_time,
                r.last_update_time,
                tags[r.experiment_id],
            )
            for r in rows
        ]

    def get_experiment(self, experiment_id: str) -> Experiment:
        eid = _experiment_id(experiment_id)
        found = self.db.read(lambda c: self._experiments(c, E.c.experiment_id == eid))
        if not found:
            raise NotFound(f"no experiment with id {experiment_id!r}")
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        # Names are unique per project; an unscoped (local) store means the default project.
        in_project = and_(E.c.name == name, E.c.project_id == (self.project_id or 0))
        found = self.db.read(lambda c: self._experiments(c, in_project))
        return found[0] if found else None

    def search_experiments(
        self, *, view: str = "active", name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]:
        cond: Any = E.c.lifecycle_stage.in_(_view(view))
        if name_like:
            cond = and_(cond, E.c.name.like(name_like))
        return self.db.read(lambda c: self._experiments(c, cond, max_results))

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        eid = self.get_experiment(experiment_id).experiment_id
        ((key, value),) = clean_tags({key: value}).items()

        def run(conn: Connection) -> None:
            stmt = self.db.insert(ET).values(experiment_id=int(eid), key=key, value=value)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["experiment_id", "key"], set_={"value": value}
                )
            )

        self._write(run, "experiment.set_tag", "experiment", eid, {key: value})

    def delete_experiment(self, experiment_id: str) -> None:
        eid = self.get_experiment(experiment_id).experiment_id
        if eid == "0":
            raise Invalid("the Default experiment (id 0) cannot be deleted", field="experiment_id")

        def run(conn: Connection) -> None:
            now = now_ms()
            conn.execute(
                update(E)
                .where(E.c.experiment_id == int(eid))
                .values(lifecycle_stage="deleted", last_update_time=now)
            )
            # Runs deleted earlier keep their own deletion time, so a restore of the
            # experiment (which brings back runs deleted with it) leaves them deleted.
            conn.execute(
                update(R)
                .where(R.c.experiment_id == int(eid), R.c.lifecycle_stage == "active")
                .values(lifecycle_stage="deleted", deleted_time=now)
            )

        self._write(run, "experiment.delete", "experiment", eid, {"deleted": eid})
