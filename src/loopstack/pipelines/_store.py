"""Where pipeline runs are recorded: ``PipelineStore`` and its SQL implementation.

A run's creation, resumption and final status are audited (``Database.write``); step
rows, the step cache, checkpoints and lineage are high-rate and written unaudited.
"""

from __future__ import annotations

import abc
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, case, func, select

from loopstack.errors import NotFound
from loopstack.store.metadata._lineage_edges import Edge, add_edges
from loopstack.store.metadata.schema import Project
from loopstack.store.metadata.schema_loop import (
    CheckpointRow,
    PipelineRunRow,
    PipelineStepRow,
    StepCacheRow,
)

if TYPE_CHECKING:
    from loopstack.store import Stores

__all__ = ["CostRow", "PipelineStore", "RunRecord", "SqlPipelineStore", "StepRecord"]

_RUNS = cast(Table, PipelineRunRow.__table__)
_STEPS = cast(Table, PipelineStepRow.__table__)
_CACHE = cast(Table, StepCacheRow.__table__)
_CKPT = cast(Table, CheckpointRow.__table__)
_PROJECTS = cast(Table, Project.__table__)


def now_ms() -> int:
    """Now, in epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class StepRecord:
    """A step of a pipeline run as recorded."""

    step: str
    status: str
    cache_key: str | None
    tracking_run_id: str | None
    outputs: list[dict[str, Any]]
    attempts: int
    error: str | None
    cached_from: str | None
    started_at: int | None
    finished_at: int | None
    wall_s: float | None
    cpu_s: float | None
    peak_rss_bytes: int | None


@dataclass(frozen=True)
class RunRecord:
    """A pipeline run as recorded, with its steps."""

    run_uuid: str
    project_id: int
    pipeline: str
    entrypoint: str
    status: str
    params: dict[str, Any]
    graph: dict[str, Any]
    executor: str
    tracking_run_id: str | None
    error: str | None
    attempt: int
    created_by: str
    created_at: int
    finished_at: int | None
    steps: dict[str, StepRecord]


@dataclass(frozen=True)
class CostRow:
    """What the step runs of one pipeline (or project) cost."""

    key: str
    runs: int
    steps: int
    cached_steps: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int

    @property
    def peak_memory_mb(self) -> float:
        """The largest peak resident memory of a step, in MiB."""
        return self.peak_rss_bytes / (1024 * 1024)

    @classmethod
    def of_run(cls, record: RunRecord) -> CostRow:
        """What the steps of one run cost, as ``cost()`` sums them (keyed by the run's id;
        a step that has not finished counts with what is recorded so far).

        >>> CostRow.of_run(store.get_run(run_uuid)).cpu_s  # doctest: +SKIP
        """
        steps = list(record.steps.values())
        return cls(
            record.run_uuid,
            1,
            len(steps),
            sum(1 for s in steps if s.status == "CACHED"),
            float(sum(s.wall_s or 0.0 for s in steps)),
            float(sum(s.cpu_s or 0.0 for s in steps)),
            int(max((s.peak_rss_bytes or 0 for s in steps), default=0)),
        )


class PipelineStore(abc.ABC):
    """The records of pipeline runs, their steps, the step cache and checkpoints."""

    project_id: int

    @abc.abstractmethod
    def create_run(self, **fields: Any) -> None:
        """Record a new pipeline run (RUNNING)."""

    @abc.abstractmethod
    def restart_run(self, run_uuid: str, executor: str) -> int:
        """Mark a run RUNNING again for a resume; its new attempt number."""

    @abc.abstractmethod
    def finish_run(self, run_uuid: str, status: str, error: str | None = None) -> None:
        """Record a run's final status."""

    @abc.abstractmethod
    def get_run(self, run_uuid: str) -> RunRecord:
        """A run and its steps; NotFound if there is none."""

    @abc.abstractmethod
    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The latest runs first, with their steps."""

    @abc.abstractmethod
    def put_step(self, run_uuid: str, step: str, **fields: Any) -> None:
        """Insert or update a step row."""

    @abc.abstractmethod
    def finish_step(
        self, run_uuid: str, step: str, edges: list[Edge], cache: str | None, **fields: Any
    ) -> None:
        """Record a finished step, its lineage edges and (with ``cache``) its cache entry."""

    @abc.abstractmethod
    def cached(self, cache_key: str) -> tuple[list[dict[str, Any]], str] | None:
        """The outputs and run recorded under ``cache_key``, if any."""

    @abc.abstractmethod
    def get_checkpoint(self, key: str, name: str) -> tuple[str, dict[str, Any]] | None:
        """The sha256 and progress of a checkpoint, if saved."""

    @abc.abstractmethod
    def put_checkpoint(
        self, key: str, name: str, sha256: str, size: int, progress: dict[str, Any]
    ) -> None:
        """Save (replace) a checkpoint."""

    @abc.abstractmethod
    def cost(self, by: str = "pipeline", since_ms: int | None = None) -> list[CostRow]:
        """What step runs cost, grouped by pipeline (of this project) or by project (every
        project, keyed by its name)."""


def _step(row: Any) -> StepRecord:
    return StepRecord(
        row.step,
        row.status,
        row.cache_key,
        row.tracking_run_id,
        json.loads(row.outputs or "[]"),
        row.attempts,
        row.error,
        row.cached_from,
        row.started_at,
        row.finished_at,
        row.wall_s,
        row.cpu_s,
        row.peak_rss_bytes,
    )


def _run(row: Any, steps: dict[str, StepRecord]) -> RunRecord:
    return RunRecord(
        row.run_uuid,
        row.project_id,
        row.pipeline,
        row.entrypoint,
        row.status,
        json.loads(row.params),
        json.loads(row.graph),
        row.executor,
        row.tracking_run_id,
        row.error,
        row.attempt,
        row.created_by,
        row.created_at,
        row.finished_at,
        steps,
    )


class SqlPipelineStore(PipelineStore):
    """Pipeline records in the metadata database."""

    def __init__(self, stores: Stores, project_id: int = 0, *, actor: str = "local") -> None:
        self.stores = stores
        self.db = stores.db
        self.project_id = project_id
        self.actor = actor

    def create_run(self, **fields: Any) -> None:
        row = {**fields, "project_id": self.project_id, "created_by": self.actor}
        row.setdefault("created_at", now_ms())
        self.db.write(
            lambda conn: conn.execute(_RUNS.insert().values(**row)),
            actor=self.actor,
            action="pipeline_run.create",
            object_type="pipeline_run",
            object_id=str(row["run_uuid"]),
            payload={"pipeline": row["pipeline"], "params": row["params"]},
            project_id=self.project_id,
        )

    def restart_run(self, run_uuid: str, executor: str) -> int:
        def run(conn: Connection) -> int:
            attempt = conn.execute(
                select(_RUNS.c.attempt).where(_RUNS.c.run_uuid == run_uuid)
            ).scalar_one()
            conn.execute(
                _RUNS.update()
                .where(_RUNS.c.run_uuid == run_uuid)
                .values(
                    status="RUNNING",
                    error=None,
                    finished_at=None,
                    executor=executor,
                    attempt=attempt + 1,
                )
            )
            return int(attempt + 1)

        return self.db.write(
            run,
            actor=self.actor,
            action="pipeline_run.resume",
            object_type="pipeline_run",
            object_id=run_uuid,
            payload=None,
            project_id=self.project_id,
        )

    def finish_run(self, run_uuid: str, status: str, error: str | None = None) -> None:
        self.db.write(
            lambda conn: conn.execute(
                _RUNS.update()
                .where(_RUNS.c.run_uuid == run_uuid)
                .values(status=status, error=error, finished_at=now_ms())
            ),
            actor=self.actor,
            action=f"pipeline_run.{status.lower()}",
            object_type="pipeline_run",
            object_id=run_uuid,
            payload={"status": status, "error": error},
            project_id=self.project_id,
        )

    def get_run(self, run_uuid: str) -> RunRecord:
        def read(conn: Connection) -> RunRecord | None:
            row = conn.execute(
                select(_RUNS).where(
                    _RUNS.c.run_uuid == run_uuid, _RUNS.c.project_id == self.project_id
                )
            ).first()
            if row is None:
                return None
            steps = conn.execute(select(_STEPS).where(_STEPS.c.run_uuid == run_uuid)).all()
            return _run(row, {s.step: _step(s) for s in steps})

        found = self.db.read(read)
        if found is None:
            raise NotFound(f"no pipeline run {run_uuid!r} in this project")
        return found

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        q = select(_RUNS).where(_RUNS.c.project_id == self.project_id)
        if pipeline is not None:
            q = q.where(_RUNS.c.pipeline == pipeline)
        q = q.order_by(_RUNS.c.created_at.desc(), _RUNS.c.run_uuid).limit(max(1, int(limit)))

        def read(conn: Connection) -> list[RunRecord]:
            rows = conn.execute(q).all()
            ids = [r.run_uuid for r in rows]
            steps: dict[str, dict[str, StepRecord]] = {i: {} for i in ids}
            if ids:  # one query for every run's steps
                for s in conn.execute(select(_STEPS).where(_STEPS.c.run_uuid.in_(ids))):
                    steps[s.run_uuid][s.step] = _step(s)
            return [_run(r, steps[r.run_uuid]) for r in rows]

        return self.db.read(read)

    @staticmethod
    def _upsert_step(conn: Connection, run_uuid: str, step: str, fields: dict[str, Any]) -> None:
        where = (_STEPS.c.run_uuid == run_uuid) & (_STEPS.c.step == step)
        if conn.execute(select(_STEPS.c.step).where(where)).first() is None:
            values = {"status": "PENDING", "outputs": "[]", "attempts": 0, **fields}
            conn.execute(_STEPS.insert().values(run_uuid=run_uuid, step=step, **values))
        elif fields:
            conn.execute(_STEPS.update().where(where).values(**fields))

    def put_step(self, run_uuid: str, step: str, **fields: Any) -> None:
        self.db.write_unaudited(lambda conn: self._upsert_step(conn, run_uuid, step, fields))

    def finish_step(
        self, run_uuid: str, step: str, edges: list[Edge], cache: str | None, **fields: Any
    ) -> None:
        def run(conn: Connection) -> None:
            self._upsert_step(conn, run_uuid, step, fields)
            add_edges(conn, edges)
            if cache is not None:
                where = (_CACHE.c.project_id == self.project_id) & (_CACHE.c.cache_key == cache)
                conn.execute(_CACHE.delete().where(where))
                conn.execute(
                    _CACHE.insert().values(
                        project_id=self.project_id,
                        cache_key=cache,
                        outputs=fields["outputs"],
                        run_uuid=run_uuid,
                        step=step,
                        created_at=now_ms(),
                    )
                )

        self.db.write_unaudited(run)

    def cached(self, cache_key: str) -> tuple[list[dict[str, Any]], str] | None:
        row = self.db.read(
            lambda conn: conn.execute(
                select(_CACHE.c.outputs, _CACHE.c.run_uuid).where(
                    _CACHE.c.project_id == self.project_id, _CACHE.c.cache_key == cache_key
                )
            ).first()
        )
        return None if row is None else (json.loads(row.outputs), row.run_uuid)

    def get_checkpoint(self, key: str, name: str) -> tuple[str, dict[str, Any]] | None:
        row = self.db.read(
            lambda conn: conn.execute(
                select(_CKPT.c.sha256, _CKPT.c.progress).where(
                    _CKPT.c.project_id == self.project_id,
                    _CKPT.c.key == key,
                    _CKPT.c.name == name,
                )
            ).first()
        )
        return None if row is None else (row.sha256, json.loads(row.progress or "{}"))

    def put_checkpoint(
        self, key: str, name: str, sha256: str, size: int, progress: dict[str, Any]
    ) -> None:
        def run(conn: Connection) -> None:
            where = (
                (_CKPT.c.project_id == self.project_id)
                & (_CKPT.c.key == key)
                & (_CKPT.c.name == name)
            )
            conn.execute(_CKPT.delete().where(where))
            conn.execute(
                _CKPT.insert().values(
                    project_id=self.project_id,
                    key=key,
                    name=name,
                    sha256=sha256,
                    size=size,
                    progress=json.dumps(progress, sort_keys=True),
                    updated_at=now_ms(),
                )
            )

        self.db.write_unaudited(run)

    def cost(self, by: str = "pipeline", since_ms: int | None = None) -> list[CostRow]:
        group = _RUNS.c.pipeline if by == "pipeline" else _RUNS.c.project_id
        q = (
            select(
                group.label("key"),
                func.count(func.distinct(_RUNS.c.run_uuid)),
                func.count(_STEPS.c.step),
                func.sum(case((_STEPS.c.status == "CACHED", 1), else_=0)),
                func.coalesce(func.sum(_STEPS.c.wall_s), 0.0),
                func.coalesce(func.sum(_STEPS.c.cpu_s), 0.0),
                func.coalesce(func.max(_STEPS.c.peak_rss_bytes), 0),
            )
            .select_from(_RUNS.join(_STEPS, _STEPS.c.run_uuid == _RUNS.c.run_uuid))
            .group_by(group)
            .order_by(group)
        )
        if by == "pipeline":
            q = q.where(_RUNS.c.project_id == self.project_id)
        if since_ms is not None:
            q = q.where(_RUNS.c.created_at >= since_ms)
        rows: list[Any] = list(self.db.read(lambda conn: conn.execute(q).all()))
        if by == "project":
            names = dict(
                self.db.read(
                    lambda conn: conn.execute(
                        select(_PROJECTS.c.project_id, _PROJECTS.c.name)
                    ).all()
                )
            )
            rows = [(names.get(r[0], "default" if r[0] == 0 else str(r[0])), *r[1:]) for r in rows]
        return [
            CostRow(
                str(r[0]), int(r[1]), int(r[2]), int(r[3] or 0), float(r[4]), float(r[5]), int(r[6])
            )
            for r in rows
        ]
