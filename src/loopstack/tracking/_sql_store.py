"""Tracking store over the SQL metadata database (SQLite or PostgreSQL) and the artifact store.

Its parts: ``_sql_base`` (tables, run lookup), ``_sql_experiments``, ``_sql_search``
(search and artifacts); runs, batches and inputs are here."""

from __future__ import annotations

import hashlib
import json
import uuid
from array import array
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from loopstack.errors import Conflict, Invalid, NotFound
from loopstack.store import audit
from loopstack.tracking._entities import (
    TERMINAL_STATUSES,
    DatasetInput,
    Metric,
    Run,
    RunStatus,
    check_batch_size,
    check_new_run_size,
    check_run_size,
    clean_params,
    clean_tags,
    metric_rows,
    now_ms,
)
from loopstack.tracking._sql_base import (
    LM,
    RI,
    D,
    E,
    M,
    P,
    R,
    T,
    _check_length,
    _check_run_id,
    _experiment_id,
    _latest_row,
    _storable,
    _value,
)
from loopstack.tracking._sql_experiments import SqlExperiments
from loopstack.tracking._sql_search import SqlRunSearch
from loopstack.tracking._store import TrackingStore

__all__ = ["SqlTrackingStore"]


class SqlTrackingStore(SqlExperiments, SqlRunSearch, TrackingStore):
    """Runs in the metadata database; every change is audited in the same transaction."""

    # -- runs -----------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None = None,
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        user_id: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Run:
        eid = _experiment_id(experiment_id)
        check_new_run_size(params=len(params or ()), tags=len(tags or ()))
        tags = clean_tags(tags)
        prows = clean_params(params)
        _check_length("run_name", run_name, 250)
        _check_length("user_id", user_id, 256)
        if not self.trust_user_id:  # with auth on, a run belongs to whoever's token made it
            user_id = self.actor
            if "mlflow.user" in tags:
                tags["mlflow.user"] = self.actor
        run_id = uuid.uuid4().hex
        run_name = run_name or tags.get("mlflow.runName") or _generated_name(run_id)
        tags["mlflow.runName"] = run_name
        user_id = user_id or tags.get("mlflow.user") or self.actor
        parent = tags.get("mlflow.parentRunId")
        start = start_time if start_time is not None else now_ms()

        def run(conn: Connection) -> str:
            # The experiment is checked in the same transaction that adds the run to it.
            exp = conn.execute(
                select(E.c.artifact_location, E.c.lifecycle_stage).where(
                    self._in_project(E.c.experiment_id == eid)
                )
            ).first()
            if exp is None:
                raise NotFound(f"no experiment with id {experiment_id!r}")
            if exp.lifecycle_stage != "active":
                raise Conflict(f"experiment {experiment_id!r} is deleted; restore it to log runs")
            artifact_uri = f"{exp.artifact_location}/{run_id}/artifacts"
            conn.execute(
                R.insert().values(
                    run_id=run_id,
                    experiment_id=eid,
                    name=run_name,
                    status=RunStatus.RUNNING,
                    start_time=start,
                    end_time=None,
                    lifecycle_stage="active",
                    artifact_uri=artifact_uri,
                    user_id=user_id,
                    parent_run_id=parent,
                )
            )
            conn.execute(
                T.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
            )
            if prows:
                conn.execute(
                    P.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in prows.items()]
                )
            return str(artifact_uri)

        artifact_uri = self._write(
            run,
            "run.create",
            "run",
            run_id,
            {"experiment_id": str(eid), "name": run_name, "tags": tags, "params": prows},
        )
        return Run(
            run_id,
            str(eid),
            run_name,
            RunStatus.RUNNING,
            start,
            None,
            "active",
            artifact_uri,
            user_id,
            params=prows,
            tags=tags,
        )

    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        end_time: int | None = None,
        metrics: list[Metric] | None = None,
    ) -> None:
        if status not in TERMINAL_STATUSES:
            raise Invalid(f"a run ends FINISHED, FAILED or KILLED; got {status!r}", field="status")
        end = end_time if end_time is not None else now_ms()
        batch = self._batch(run_id, metrics, None, None)

        def run(conn: Connection) -> None:
            # The last points and the final status land together: one transaction, one fsync.
            if batch is not None:
                batch[0](conn)
            else:
                self._run_row(conn, run_id)
            conn.execute(update(R).where(R.c.run_id == run_id).values(status=status, end_time=end))

        self._write(
            run,
            "run.end",
            "run",
            run_id,
            audit.RawDigest(f"{status}|{end}|{batch[1] if batch else ''}"),
        )

    def get_run(self, run_id: str) -> Run:
        return self.db.read(lambda c: self._hydrate(c, [self._run_row(c, run_id)]))[0]

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> Run:
        values: dict[str, Any] = {}
        if status is not None:
            if status not in RunStatus.ALL:
                raise Invalid(
                    f"status must be one of {list(RunStatus.ALL)}; got {status!r}", field="status"
                )
            values["status"] = status
            if status in TERMINAL_STATUSES:
                values["end_time"] = end_time if end_time is not None else now_ms()
            else:
                values["end_time"] = None
        elif end_time is not None:
            values["end_time"] = end_time
        if run_name:
            _check_length("run_name", run_name, 250)
            values["name"] = run_name

        def run(conn: Connection) -> None:
            self._run_row(conn, run_id)
            if values:
                conn.execute(update(R).where(R.c.run_id == run_id).values(**values))
            if run_name:
                self._upsert_tags(conn, run_id, {"mlflow.runName": run_name})

        self._write(run, "run.update", "run", run_id, values)
        return self.get_run(run_id)

    def _set_lifecycle(self, run_id: str, stage: str) -> None:
        def run(conn: Connection) -> None:
            self._run_row(conn, run_id)
            conn.execute(
                update(R)
                .where(R.c.run_id == run_id)
                .values(
                    lifecycle_stage=stage, deleted_time=now_ms() if stage == "deleted" else None
                )
            )

        self._write(
            run,
            f"run.{'delete' if stage == 'deleted' else 'restore'}",
            "run",
            run_id,
            {"lifecycle_stage": stage},
        )

    def delete_run(self, run_id: str) -> None:
        self._set_lifecycle(run_id, "deleted")

    def restore_run(self, run_id: str) -> None:
        self._set_lifecycle(run_id, "active")

    def _upsert_tags(self, conn: Connection, run_id: str, tags: dict[str, str]) -> None:
        stmt = self.db.insert(T)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
            ),
            [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
        )

    @staticmethod
    def _count(conn: Connection, table: Any, run_id: str) -> int:
        """How many rows of ``table`` (params, tags) the run has, this transaction's too."""
        return int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.run_id == run_id)
            ).scalar()
            or 0
        )

    def _check_writable(self, conn: Connection, run_id: str) -> None:
        """A deleted run takes nothing; a FINISHED, FAILED or KILLED one still does (MLflow)."""
        row = self._run_row(conn, run_id)
        if row.lifecycle_stage != "active":
            err = Conflict(
                f"run {run_id!r} is deleted (its lifecycle stage is {row.lifecycle_stage!r}); "
                "restore it before logging to it",
                field="run_id",
            )
            err.mlflow_code = "INVALID_PARAMETER_VALUE"  # MLflow's code for a deleted run
            raise err

    def _batch(
        self,
        run_id: str,
        metrics: list[Metric] | None,
        params: dict[str, str] | None,
        tags: dict[str, str] | None,
    ) -> tuple[Any, str] | None:
        """Validate a batch (before any write: a bad value changes nothing) and return the
        function that writes it inside a transaction, with its audit digest."""
        check_batch_size(params=len(params or ()), tags=len(tags or ()))
        # Rows as plain tuples: this is the hot path of every training loop.
        mrows = metric_rows(run_id, metrics or [])
        prows = clean_params(params)
        trows = clean_tags(tags)
        if not (mrows or prows or trows):
            return None
        mrows, columns = _storable(mrows)
        # MLflow's "latest": highest step, then newest timestamp, then largest (stored) value.
        latest: dict[str, tuple[Any, ...]] = {}
        for row in mrows:
            cur = latest.get(row[1])
            if cur is None or (row[3], row[4], row[2]) >= (cur[3], cur[4], cur[2]):
                latest[row[1]] = row

        def write(conn: Connection) -> None:
            self._check_writable(conn, run_id)
            if prows:
                existing = dict(
                    conn.execute(
                        select(P.c.key, P.c.value).where(
                            P.c.run_id == run_id, P.c.key.in_(list(prows))
                        )
                    ).all()
                )
                for k, v in prows.items():
                    if k in existing and existing[k] != v:
                        raise Invalid(
                            f"Changing param values is not allowed. Param with key={k!r} was "
                            f"already logged with value={existing[k]!r} for run ID={run_id!r}. "
                            f"Attempted logging new value {v!r}.",
                            field=f"params.{k}",
                        )
                new = [
                    {"run_id": run_id, "key": k, "value": v}
                    for k, v in prows.items()
                    if k not in existing
                ]
                if new:
                    conn.execute(P.insert(), new)
                    check_run_size("params", self._count(conn, P, run_id))
            if trows:
                self._upsert_tags(conn, run_id, trows)
                check_run_size("tags", self._count(conn, T, run_id))
            if mrows:
                self.db.backend.bulk_insert(conn, "metrics", columns, mrows)
                stmt = self.db.insert(LM)
                ex = stmt.excluded
                newer = or_(
                    ex.step > LM.c.step,
                    and_(ex.step == LM.c.step, ex.timestamp > LM.c.timestamp),
                    and_(
                        ex.step == LM.c.step, ex.timestamp == LM.c.timestamp, ex.value >= LM.c.value
                    ),
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "key"],
                        set_={
                            "value": ex.value,
                            "step": ex.step,
                            "timestamp": ex.timestamp,
                            "is_nan": ex.is_nan,
                        },
                        where=newer,
                    ),
                    [_latest_row(r) for r in latest.values()],
                )

        return write, _batch_digest(mrows, prows, trows)

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: list[Metric] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        batch = self._batch(run_id, metrics, params, tags)
        if batch is None:
            self.db.read(lambda c: self._run_row(c, run_id))
            return
        write, digest = batch
        self._write(write, "run.log_batch", "run", run_id, audit.RawDigest(digest))

    def delete_tag(self, run_id: str, key: str) -> None:
        def run(conn: Connection) -> None:
            self._run_row(conn, run_id)
            gone = conn.execute(T.delete().where(T.c.run_id == run_id, T.c.key == key)).rowcount
            if not gone:
                raise NotFound(f"run {run_id!r} has no tag {key!r}")

        self._write(run, "run.delete_tag", "run", run_id, {"key": key})

    def log_inputs(self, run_id: str, datasets: list[DatasetInput]) -> None:
        for d in datasets:
            if not d.name or not d.digest:
                raise Invalid(
                    f"a dataset input needs a name and a digest; got {d!r}", field="datasets"
                )
            _check_length("dataset name", d.name, 500)
            _check_length("dataset digest", d.digest, 64)
            _check_length("dataset source_type", d.source_type, 64)

        def run(conn: Connection) -> None:
            row = self._run_row(conn, run_id)
            for d in datasets:
                found = conn.execute(
                    select(D.c.dataset_id).where(
                        D.c.experiment_id == row.experiment_id,
                        D.c.name == d.name,
                        D.c.digest == d.digest,
                    )
                ).scalar()
                if found is None:
                    found = uuid.uuid4().hex
                    conn.execute(
                        D.insert().values(
                            dataset_id=found,
                            experiment_id=row.experiment_id,
                            name=d.name,
                            digest=d.digest,
                            source_type=d.source_type,
                            source=d.source,
                            schema=d.schema,
                            profile=d.profile,
                        )
                    )
                stmt = self.db.insert(RI).values(
                    run_id=run_id, dataset_id=found, tags=json.dumps(d.tags, sort_keys=True)
                )
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["run_id", "dataset_id"]))

        self._write(
            run,
            "run.log_inputs",
            "run",
            run_id,
            [{"name": d.name, "digest": d.digest} for d in datasets],
        )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        def run(conn: Connection) -> list[Metric]:
            self._run_row(conn, run_id)
            rows = conn.execute(
                select(M.c.key, M.c.value, M.c.is_nan, M.c.step, M.c.timestamp)
                .where(M.c.run_id == run_id, M.c.key == key)
                .order_by(M.c.step, M.c.timestamp, M.c.id)
            ).all()
            return [Metric(r.key, _value(r), r.step, r.timestamp) for r in rows]

        return self.db.read(run)

    def get_metric_histories(self, run_ids: list[str], key: str) -> dict[str, list[Metric]]:
        """The history of ``key`` in each run, read in one transaction and one query."""
        return self.get_metrics_histories(run_ids, [key])[key]

    def get_metrics_histories(
        self, run_ids: list[str], keys: list[str] | None = None, *, max_keys: int = 20
    ) -> dict[str, dict[str, list[Metric]]]:
        """The histories of ``keys`` (None: the runs' first ``max_keys`` keys in order) in
        each run, read in one transaction: one query for the keys, one for the points."""
        ids = list(dict.fromkeys(_check_run_id(r) for r in run_ids))

        def run(conn: Connection) -> dict[str, dict[str, list[Metric]]]:
            q = select(R.c.run_id).where(R.c.run_id.in_(ids))
            if self.project_id is not None:
                q = q.join(E, E.c.experiment_id == R.c.experiment_id).where(
                    E.c.project_id == self.project_id
                )
            found = set(conn.execute(q).scalars())
            for rid in ids:
                if rid not in found:
                    raise NotFound(f"no run with id {rid!r}")
            wanted = list(dict.fromkeys(keys)) if keys is not None else None
            if wanted is None:
                first = select(LM.c.key).where(LM.c.run_id.in_(ids)).distinct()
                wanted = list(conn.execute(first.order_by(LM.c.key).limit(max_keys)).scalars())
            out: dict[str, dict[str, list[Metric]]] = {k: {rid: [] for rid in ids} for k in wanted}
            rows = conn.execute(
                select(M.c.run_id, M.c.key, M.c.value, M.c.is_nan, M.c.step, M.c.timestamp)
                .where(M.c.run_id.in_(ids), M.c.key.in_(wanted))
                .order_by(M.c.run_id, M.c.key, M.c.step, M.c.timestamp, M.c.id)
            )
            for r in rows:
                out[r.key][r.run_id].append(Metric(r.key, _value(r), r.step, r.timestamp))
            return out

        return self.db.read(run)


def _batch_digest(
    mrows: list[tuple[Any, ...]], params: dict[str, str], tags: dict[str, str]
) -> str:
    """The audit digest of a batch: every point exactly, hashed as packed binary (fast)."""
    h = hashlib.sha256()
    h.update("\x1f".join(r[1] for r in mrows).encode())
    h.update(array("d", [r[2] for r in mrows]).tobytes())
    h.update(array("q", [r[3] for r in mrows]).tobytes())
    h.update(array("q", [r[4] for r in mrows]).tobytes())
    h.update(json.dumps([params, tags], sort_keys=True).encode())
    return h.hexdigest()


_ADJECTIVES = [
    "amber",
    "bold",
    "brisk",
    "calm",
    "clever",
    "crisp",
    "eager",
    "fleet",
    "gentle",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "quiet",
    "rapid",
    "sharp",
    "steady",
    "swift",
]
_NOUNS = [
    "badger",
    "cedar",
    "comet",
    "falcon",
    "fern",
    "harbor",
    "heron",
    "lynx",
    "maple",
    "meadow",
    "otter",
    "pine",
    "raven",
    "river",
    "sparrow",
    "summit",
    "tide",
    "willow",
]


def _generated_name(run_id: str) -> str:
    n = int(run_id[:8], 16)
    return f"{_ADJECTIVES[n % len(_ADJECTIVES)]}-{_NOUNS[(n // 97) % len(_NOUNS)]}-{n % 1000}"
