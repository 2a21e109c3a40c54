"""Tracking store over the SQL metadata database (SQLite or PostgreSQL) and the artifact store."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from array import array
from collections import defaultdict
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from loopstack.errors import AlreadyExists, Conflict, Invalid, NotFound
from loopstack.store import Stores, audit
from loopstack.store.artifacts import FileInfo, sanitize_path
from loopstack.store.metadata.schema import (
    Dataset,
    ExperimentTag,
    LatestMetric,
    Param,
    RunInput,
    RunTag,
)
from loopstack.store.metadata.schema import (
    Experiment as ExperimentRow,
)
from loopstack.store.metadata.schema import (
    Metric as MetricRow,
)
from loopstack.store.metadata.schema import (
    Run as RunRow,
)
from loopstack.tracking._entities import (
    TERMINAL_STATUSES,
    DatasetInput,
    Experiment,
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
from loopstack.tracking._page_token import decode_token, encode_token
from loopstack.tracking._search import Comparison, parse_filter, parse_order_by
from loopstack.tracking._store import TrackingStore

__all__ = ["SqlTrackingStore"]

E, ET = cast(Table, ExperimentRow.__table__), cast(Table, ExperimentTag.__table__)
R, P, T = cast(Table, RunRow.__table__), cast(Table, Param.__table__), cast(Table, RunTag.__table__)
M, LM = cast(Table, MetricRow.__table__), cast(Table, LatestMetric.__table__)
D, RI = cast(Table, Dataset.__table__), cast(Table, RunInput.__table__)

_VIEWS = {"active": ("active",), "deleted": ("deleted",), "all": ("active", "deleted")}
_MAX_RESULTS = 50_000
_METRIC_COLUMNS = ("run_id", "key", "value", "step", "timestamp")
_NAN_COLUMNS = (*_METRIC_COLUMNS, "is_nan")


def _storable(rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], tuple[str, ...]]:
    """Rows as the metrics table stores them, and their columns.

    SQLite reads a NaN REAL back as NULL, so a NaN is stored as 0 flagged ``is_nan``, as
    MLflow does; infinities are kept as they are (both databases store them). A batch
    without NaN (the usual one) is passed through untouched, relying on the column default.
    """
    if all(r[2] == r[2] for r in rows):
        return rows, _METRIC_COLUMNS
    return [(*r[:2], 0.0, *r[3:], True) if r[2] != r[2] else (*r, False) for r in rows], (
        _NAN_COLUMNS
    )


def _latest_row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {**dict(zip(_METRIC_COLUMNS, row[:5], strict=True)), "is_nan": len(row) > 5 and row[5]}


def _value(row: Any) -> float:
    """A stored metric value as it was logged."""
    return math.nan if row.is_nan else row.value


def _view(view: str) -> tuple[str, ...]:
    key = (view or "active").lower().replace("_only", "")
    if key not in _VIEWS:
        raise Invalid(f"view must be one of {sorted(_VIEWS)}; got {view!r} instead", field="view")
    return _VIEWS[key]


def _experiment_id(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise NotFound(f"no experiment with id {value!r} (experiment ids are integers)") from None


def _check_length(what: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise Invalid(
            f"the {what} must be at most {limit} characters; got {len(value)} ({value[:40]!r}...)",
            field=what.replace(" ", "."),
        )


def _check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not run_id or len(run_id) > 32:
        raise NotFound(f"no run with id {run_id!r}")
    return run_id


class SqlTrackingStore(TrackingStore):
    """Runs in the metadata database; every change is audited in the same transaction."""

    def __init__(
        self,
        stores: Stores,
        *,
        actor: str = "local",
        trust_user_id: bool = True,
        project_id: int | None = None,
    ) -> None:
        self.stores = stores
        self.db = stores.db
        self.actor = actor
        #: False behind an authenticating server: runs are owned by the caller, not by what
        #: the client claims.
        self.trust_user_id = trust_user_id
        #: None: every project (local use). An id: only that project's experiments and runs
        #: exist for this store; the others answer NotFound.
        self.project_id = project_id

    def _in_project(self, where: Any) -> Any:
        return where if self.project_id is None else and_(where, E.c.project_id == self.project_id)

    def _write(
        self, fn: Any, action: str, object_type: str, object_id: Any, payload: Any = None
    ) -> Any:
        return self.db.write(
            fn,
            actor=self.actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            payload=payload,
            project_id=self.project_id,
        )

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

    def _run_row(self, conn: Connection, run_id: str) -> Any:
        q = select(R).where(R.c.run_id == _check_run_id(run_id))
        if self.project_id is not None:
            q = q.join(E, E.c.experiment_id == R.c.experiment_id).where(
                E.c.project_id == self.project_id
            )
        row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"no run with id {run_id!r}")
        return row

    def _hydrate(self, conn: Connection, rows: list[Any]) -> list[Run]:
        ids = [r.run_id for r in rows]
        params: dict[str, dict[str, str]] = defaultdict(dict)
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        metrics: dict[str, list[Metric]] = defaultdict(list)
        inputs: dict[str, list[DatasetInput]] = defaultdict(list)
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            for p in conn.execute(select(P).where(P.c.run_id.in_(chunk))):
                params[p.run_id][p.key] = p.value
            for t in conn.execute(select(T).where(T.c.run_id.in_(chunk))):
                tags[t.run_id][t.key] = t.value
            for m in conn.execute(select(LM).where(LM.c.run_id.in_(chunk)).order_by(LM.c.key)):
                metrics[m.run_id].append(Metric(m.key, _value(m), m.step, m.timestamp))
            q = select(RI.c.run_id, RI.c.tags, D).join(D, D.c.dataset_id == RI.c.dataset_id)
            for d in conn.execute(q.where(RI.c.run_id.in_(chunk))):
                inputs[d.run_id].append(
                    DatasetInput(
                        d.name,
                        d.digest,
                        d.source_type,
                        d.source,
                        d.schema,
                        d.profile,
                        json.loads(d.tags),
                    )
                )
        return [
            Run(
                r.run_id,
                str(r.experiment_id),
                r.name,
                r.status,
                r.start_time,
                r.end_time,
                r.lifecycle_stage,
                r.artifact_uri,
                r.user_id,
                params[r.run_id],
                {m.key: m.value for m in metrics[r.run_id]},
                metrics[r.run_id],
                tags[r.run_id],
                inputs[r.run_id],
            )
            for r in rows
        ]

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

    # -- search ---------------------------------------------------------------------
    def _condition(self, c: Comparison) -> Any:
        def compare(col: Any) -> Any:
            op, v = c.op, c.value
            if op == "IN":
                return col.in_(list(v))  # type: ignore[arg-type]
            if op == "NOT IN":
                return col.not_in(list(v))  # type: ignore[arg-type]
            if op == "LIKE":
                return col.like(v)
            if op == "ILIKE":
                return func.lower(col).like(func.lower(literal(v)))
            return col.op(op)(v)

        if c.kind == "attribute":
            col: Any = R.c[c.key]
            if c.key == "experiment_id":
                col = func.cast(col, R.c.run_id.type)
            return compare(col)
        table = {"metric": LM, "param": P, "tag": T}[c.kind]
        matches = compare(table.c.value)
        if c.kind == "metric":
            # A NaN (stored as 0) is unequal to everything and in no order with anything.
            matches = or_(matches, LM.c.is_nan) if c.op == "!=" else and_(matches, ~LM.c.is_nan)
        return exists().where(table.c.run_id == R.c.run_id, table.c.key == c.key, matches)

    def search_runs(
        self,
        experiment_ids: list[str],
        *,
        filter_string: str = "",
        view: str = "active",
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        if not isinstance(max_results, int) or not 0 < max_results <= _MAX_RESULTS:
            raise Invalid(
                f"max_results must be an integer in 1..{_MAX_RESULTS}; got {max_results!r}",
                field="max_results",
            )
        comparisons = parse_filter(filter_string)
        orders = parse_order_by(order_by)
        offset = decode_token(page_token)
        eids = [_experiment_id(e) for e in experiment_ids]
        q = select(R).where(R.c.experiment_id.in_(eids), R.c.lifecycle_stage.in_(_view(view)))
        if self.project_id is not None:
            q = q.where(
                R.c.experiment_id.in_(
                    select(E.c.experiment_id).where(E.c.project_id == self.project_id)
                )
            )
        for c in comparisons:
            q = q.where(self._condition(c))
        sort_cols: list[Any] = []
        for n, o in enumerate(orders):
            if o.kind == "attribute":
                col = R.c[o.key]
            else:
                table = {"metric": LM, "param": P, "tag": T}[o.kind].alias(f"o{n}")
                q = q.outerjoin(table, and_(table.c.run_id == R.c.run_id, table.c.key == o.key))
                col = table.c.value
            # Runs without the key go last, as in MLflow; NaN metrics just before them.
            sort_cols.append(col.is_(None))
            if o.kind == "metric":
                sort_cols.append(table.c.is_nan.is_(True))
            sort_cols.append(col.asc() if o.ascending else col.desc())
        sort_cols += [R.c.start_time.desc(), R.c.run_id]
        q = q.order_by(*sort_cols).offset(offset).limit(max_results + 1)

        def run(conn: Connection) -> tuple[list[Run], str | None]:
            rows = conn.execute(q).all()
            more = len(rows) > max_results
            runs = self._hydrate(conn, list(rows[:max_results]))
            return runs, (encode_token(offset + max_results) if more else None)

        return self.db.read(run)

    # -- artifacts ------------------------------------------------------------------
    def _artifact_root(self, run_id: str) -> str:
        return self.db.read(lambda c: self._run_row(c, run_id)).artifact_uri

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        root = self._artifact_root(run_id)
        local_path = Path(local_path)
        sub = (
            sanitize_path(artifact_path, field="artifact_path", allow_empty=True)
            if artifact_path
            else ""
        )
        prefix = f"{root}/{sub}" if sub else root
        if local_path.is_dir():
            self.stores.artifacts.log_dir(
                local_path,
                f"{prefix}/{local_path.name}" if not artifact_path else prefix,
                actor=self.actor,
                project_id=self.project_id,
            )
        elif local_path.is_file():
            self.stores.artifacts.log_file(
                local_path,
                f"{prefix}/{local_path.name}",
                actor=self.actor,
                project_id=self.project_id,
            )
        else:
            raise Invalid(
                f"expected a file or directory to log; got {str(local_path)!r}, which "
                "does not exist",
                field="local_path",
            )

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        root = self._artifact_root(run_id)
        sub = sanitize_path(path, allow_empty=True) if path else ""
        prefix = f"{root}/{sub}" if sub else root
        return [
            FileInfo(f"{sub}/{f.path}" if sub else f.path, f.is_dir, f.size, f.sha256)
            for f in self.stores.artifacts.list(prefix)
        ]

    def download_artifacts(self, run_id: str, path: str, dest: Path) -> Path:
        root = self._artifact_root(run_id)
        sub = sanitize_path(path, allow_empty=True) if path else ""
        return self.stores.artifacts.download(f"{root}/{sub}" if sub else root, dest)


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
