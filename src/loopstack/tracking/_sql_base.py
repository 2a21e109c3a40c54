"""What the SQL tracking store's parts share: the tables, small checks, and the base
class that knows its stores, actor and project, finds a run and hydrates runs."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, select

from loopstack.errors import Invalid, NotFound
from loopstack.store import Stores
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
    DatasetInput,
    Metric,
    Run,
)

__all__ = ["SqlStoreBase"]

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


class SqlStoreBase:
    """The state and lookups every part of the SQL tracking store uses."""

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
