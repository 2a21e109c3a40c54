"""Experiment changes beyond the tracking store's interface (MLflow's API offers them),
and the run counts the CLI lists.

Each change is one audited write through the store's database, so the audit log sees
them exactly as it sees the store's own changes.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, func, select, update

from loopstack.errors import AlreadyExists, Invalid, NotFound
from loopstack.store.metadata.schema import Experiment as ExperimentRow
from loopstack.store.metadata.schema import ExperimentTag
from loopstack.store.metadata.schema import Run as RunRow
from loopstack.tracking._entities import now_ms
from loopstack.tracking._sql_store import SqlTrackingStore

__all__ = ["active_run_counts", "delete_experiment_tag", "rename_experiment", "restore_experiment"]

E, ET, R = (cast(Table, t.__table__) for t in (ExperimentRow, ExperimentTag, RunRow))
_MAX_NAME = 256


def restore_experiment(store: SqlTrackingStore, experiment_id: str) -> None:
    """Bring back a deleted experiment and the runs deleted with it."""
    exp = store.get_experiment(experiment_id)
    if exp.lifecycle_stage != "deleted":
        raise Invalid(
            f"experiment {experiment_id!r} is {exp.lifecycle_stage}; only a deleted "
            "experiment can be restored",
            field="experiment_id",
        )
    eid, deleted_at = int(exp.experiment_id), exp.last_update_time

    def run(conn: Connection) -> None:
        conn.execute(
            update(E)
            .where(E.c.experiment_id == eid)
            .values(lifecycle_stage="active", last_update_time=now_ms())
        )
        # Only runs stamped deleted at or after the experiment's deletion come back. (The
        # store's delete_experiment re-stamps runs that were already deleted, so today those
        # come back too.)
        conn.execute(
            update(R)
            .where(
                R.c.experiment_id == eid,
                R.c.lifecycle_stage == "deleted",
                R.c.deleted_time >= deleted_at,
            )
            .values(lifecycle_stage="active", deleted_time=None)
        )

    store.db.write(
        run,
        actor=store.actor,
        action="experiment.restore",
        object_type="experiment",
        object_id=exp.experiment_id,
        project_id=store.project_id,
        payload={"restored": exp.experiment_id},
    )


def rename_experiment(store: SqlTrackingStore, experiment_id: str, new_name: str) -> None:
    """Give an active experiment a new name, unique in its project."""
    if not isinstance(new_name, str) or not new_name.strip():
        raise Invalid(
            f"an experiment name must be a non-empty string; got {new_name!r}", field="new_name"
        )
    if len(new_name) > _MAX_NAME:
        raise Invalid(
            f"an experiment name must be at most {_MAX_NAME} characters; got {len(new_name)}",
            field="new_name",
        )
    exp = store.get_experiment(experiment_id)
    if exp.lifecycle_stage != "active":
        raise Invalid(
            f"experiment {experiment_id!r} is deleted; restore it before renaming",
            field="experiment_id",
        )
    eid = int(exp.experiment_id)

    def run(conn: Connection) -> None:
        taken = conn.execute(
            select(E.c.experiment_id).where(
                E.c.name == new_name,
                E.c.experiment_id != eid,
                E.c.project_id == (store.project_id or 0),
            )
        ).first()
        if taken:
            raise AlreadyExists(f"an experiment named {new_name!r} already exists")
        conn.execute(
            update(E)
            .where(E.c.experiment_id == eid)
            .values(name=new_name, last_update_time=now_ms())
        )

    store.db.write(
        run,
        actor=store.actor,
        action="experiment.rename",
        object_type="experiment",
        object_id=exp.experiment_id,
        project_id=store.project_id,
        payload={"from": exp.name, "to": new_name},
    )


def delete_experiment_tag(store: SqlTrackingStore, experiment_id: str, key: str) -> None:
    """Remove one tag of an experiment; NotFound when it has no such tag."""
    exp = store.get_experiment(experiment_id)
    eid = int(exp.experiment_id)

    def run(conn: Connection) -> None:
        gone = conn.execute(ET.delete().where(ET.c.experiment_id == eid, ET.c.key == key)).rowcount
        if not gone:
            raise NotFound(f"experiment {experiment_id!r} has no tag {key!r}")

    store.db.write(
        run,
        actor=store.actor,
        action="experiment.delete_tag",
        object_type="experiment",
        object_id=exp.experiment_id,
        project_id=store.project_id,
        payload={"key": key},
    )


def active_run_counts(store: SqlTrackingStore) -> dict[str, int]:
    """Active runs per experiment id of the store's project, in one query."""
    rows = store.db.read(
        lambda c: c.execute(
            select(R.c.experiment_id, func.count())
            .join(E, E.c.experiment_id == R.c.experiment_id)
            .where(R.c.lifecycle_stage == "active", E.c.project_id == (store.project_id or 0))
            .group_by(R.c.experiment_id)
        ).all()
    )
    return {str(eid): int(n) for eid, n in rows}
