"""MLflow 3 logged models in the metadata database, beside the runs that produce them.

A logged model has its own artifact location, ``<experiment>/models/<model_id>/artifacts``,
params, tags, metrics (points logged to a run with the model's id) and links to the
runs that produced (outputs) or used (inputs) it. Every change is audited in the same
transaction; a project sees only the models of its own experiments.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, select, update

from loopstack.errors import Conflict, Invalid, NotFound
from loopstack.store.metadata.schema import Experiment as ExperimentRow
from loopstack.store.metadata.schema import LoggedModel as ModelRow
from loopstack.store.metadata.schema import (
    LoggedModelMetric,
    LoggedModelParam,
    LoggedModelTag,
    RunModelLink,
)
from loopstack.store.metadata.schema import Run as RunRow
from loopstack.tracking._entities import (
    clean_params,
    clean_tags,
    now_ms,
    validate_metric,
)
from loopstack.tracking._logged_model_search import (
    LoggedModel,
    ModelMetric,
    ModelStatus,
    search_models,
)
from loopstack.tracking._sql_store import SqlTrackingStore

__all__ = ["LoggedModelStore", "new_model_id"]

E, R = cast(Table, ExperimentRow.__table__), cast(Table, RunRow.__table__)
LM, LMP = cast(Table, ModelRow.__table__), cast(Table, LoggedModelParam.__table__)
LMT, LMM = cast(Table, LoggedModelTag.__table__), cast(Table, LoggedModelMetric.__table__)
LINK = cast(Table, RunModelLink.__table__)
_SCAN = 50_000


def new_model_id() -> str:
    """A fresh id in MLflow's shape: ``m-`` and 32 hex digits."""
    return f"m-{uuid.uuid4().hex}"


class LoggedModelStore:
    """The logged models of one project, acting as one caller (who the audit log names)."""

    def __init__(self, tracking: SqlTrackingStore) -> None:
        self.tracking = tracking
        self.db = tracking.db
        self.actor = tracking.actor
        self.project_id = tracking.project_id

    # -- helpers ----------------------------------------------------------------------
    def _visible(self, where: Any) -> Any:
        q = select(LM).join(E, E.c.experiment_id == LM.c.experiment_id).where(where)
        return q if self.project_id is None else q.where(E.c.project_id == self.project_id)

    def _row(self, conn: Connection, model_id: Any, *, allow_deleted: bool = False) -> Any:
        row = None
        if isinstance(model_id, str) and model_id and len(model_id) <= 40:
            row = conn.execute(self._visible(LM.c.model_id == model_id)).first()
        if row is None or (row.lifecycle_stage != "active" and not allow_deleted):
            raise NotFound(
                f"Logged model with ID '{model_id}' not found: no logged model of this "
                "project has that id" + ("" if row is None else " (it was deleted)")
            )
        return row

    def _load(self, conn: Connection, rows: Sequence[Any]) -> list[LoggedModel]:
        ids = [r.model_id for r in rows]
        params: dict[str, dict[str, str]] = defaultdict(dict)
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        metrics: dict[str, list[ModelMetric]] = defaultdict(list)
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            for p in conn.execute(select(LMP).where(LMP.c.model_id.in_(chunk))):
                params[p.model_id][p.key] = p.value
            for t in conn.execute(select(LMT).where(LMT.c.model_id.in_(chunk))):
                tags[t.model_id][t.key] = t.value
            for m in conn.execute(select(LMM).where(LMM.c.model_id.in_(chunk))):
                metrics[m.model_id].append(
                    ModelMetric(
                        m.key,
                        math.nan if m.is_nan else m.value,
                        m.timestamp,
                        m.step,
                        m.run_id,
                        m.dataset_name,
                        m.dataset_digest,
                    )
                )
        return [
            LoggedModel(
                model_id=r.model_id,
                experiment_id=str(r.experiment_id),
                name=r.name,
                artifact_location=r.artifact_location,
                status=r.status,
                status_message=r.status_message,
                model_type=r.model_type,
                source_run_id=r.source_run_id,
                creator=r.creator,
                lifecycle_stage=r.lifecycle_stage,
                creation_timestamp=r.creation_timestamp_ms,
                last_updated_timestamp=r.last_updated_timestamp_ms,
                params=params[r.model_id],
                tags=tags[r.model_id],
                metrics=metrics[r.model_id],
            )
            for r in rows
        ]

    def _write(
        self, fn: Any, action: str, object_id: Any, payload: Any, object_type: str = "logged_model"
    ) -> Any:
        return self.db.write(
            fn,
            actor=self.actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            payload=payload,
        )

    def _touch(self, conn: Connection, model_id: str) -> None:
        conn.execute(
            update(LM).where(LM.c.model_id == model_id).values(last_updated_timestamp_ms=now_ms())
        )

    @staticmethod
    def _upsert(conn: Connection, table: Table, model_id: str, pairs: dict[str, str]) -> None:
        if not pairs:
            return
        conn.execute(delete(table).where(table.c.model_id == model_id, table.c.key.in_(pairs)))
        conn.execute(
            table.insert(), [{"model_id": model_id, "key": k, "value": v} for k, v in pairs.items()]
        )

    # -- the verbs ----------------------------------------------------------------------
    def create(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        source_run_id: str | None = None,
        model_type: str | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> LoggedModel:
        """A new model, ``LOGGED_MODEL_PENDING`` until finalized, under the experiment."""
        exp = self.tracking.get_experiment(experiment_id)
        if exp.lifecycle_stage != "active":
            raise Conflict(f"experiment {experiment_id!r} is deleted; restore it to log models")
        if source_run_id:
            self.tracking.get_run(source_run_id)  # NotFound for an unknown run
        model_id = new_model_id()
        model_name = name or f"model-{model_id[2:10]}"
        if len(model_name) > 250:
            raise Invalid(
                f"a model name must be at most 250 characters; got {len(model_name)}",
                field="name",
            )
        param_rows, tag_rows = clean_params(params), clean_tags(tags)

        def run(conn: Connection) -> str:
            now = now_ms()
            location = conn.execute(
                select(E.c.artifact_location).where(E.c.experiment_id == int(exp.experiment_id))
            ).scalar_one()
            conn.execute(
                LM.insert().values(
                    model_id=model_id,
                    experiment_id=int(exp.experiment_id),
                    name=model_name,
                    artifact_location=f"{location}/models/{model_id}/artifacts",
                    status=ModelStatus.PENDING,
                    status_message="",
                    model_type=model_type or "",
                    source_run_id=source_run_id or None,
                    creator=self.actor,
                    lifecycle_stage="active",
                    creation_timestamp_ms=now,
                    last_updated_timestamp_ms=now,
                )
            )
            self._upsert(conn, LMP, model_id, param_rows)
            self._upsert(conn, LMT, model_id, tag_rows)
            return model_id

        self._write(
            run,
            "logged_model.create",
            model_id,
            {"experiment_id": exp.experiment_id, "name": model_name, "run": source_run_id},
        )
        return self.get(model_id)

    def get(self, model_id: str, *, allow_deleted: bool = False) -> LoggedModel:
        """The model; ``NotFound`` for an unknown, deleted or other project's model."""
        return self.db.read(
            lambda conn: self._load(conn, [self._row(conn, model_id, allow_deleted=allow_deleted)])
        )[0]

    def finalize(self, model_id: str, status: str) -> LoggedModel:
        """Mark the upload finished: ``LOGGED_MODEL_READY`` or ``LOGGED_MODEL_UPLOAD_FAILED``."""
        if status not in (ModelStatus.READY, ModelStatus.FAILED):
            raise Invalid(
                f"a logged model is finalized as {ModelStatus.READY} or {ModelStatus.FAILED}; "
                f"got {status!r}",
                field="status",
            )

        def run(conn: Connection) -> None:
            self._row(conn, model_id)
            conn.execute(
                update(LM)
                .where(LM.c.model_id == model_id)
                .values(status=status, last_updated_timestamp_ms=now_ms())
            )

        self._write(run, "logged_model.finalize", model_id, {"status": status})
        return self.get(model_id)

    def delete(self, model_id: str) -> None:
        """Mark the model deleted (MLflow keeps the row; ``get`` no longer finds it)."""

        def run(conn: Connection) -> None:
            self._row(conn, model_id)
            conn.execute(
                update(LM)
                .where(LM.c.model_id == model_id)
                .values(lifecycle_stage="deleted", last_updated_timestamp_ms=now_ms())
            )

        self._write(run, "logged_model.delete", model_id, {})

    def set_tags(self, model_id: str, tags: dict[str, str]) -> None:
        """Set (or overwrite) tags."""
        rows = clean_tags(tags)

        def run(conn: Connection) -> None:
            self._row(conn, model_id)
            self._upsert(conn, LMT, model_id, rows)
            self._touch(conn, model_id)

        self._write(run, "logged_model.set_tags", model_id, {"tags": rows})

    def delete_tag(self, model_id: str, key: str) -> None:
        """Remove one tag; ``NotFound`` if the model has no such tag (as MLflow)."""

        def run(conn: Connection) -> None:
            self._row(conn, model_id)
            gone = conn.execute(
                delete(LMT).where(LMT.c.model_id == model_id, LMT.c.key == key)
            ).rowcount
            if not gone:
                raise NotFound(f"No tag with key {key!r} found for model with ID {model_id!r}")
            self._touch(conn, model_id)

        self._write(run, "logged_model.delete_tag", model_id, {"key": key})

    def log_params(self, model_id: str, params: dict[str, str]) -> None:
        """Add params (a param's value is overwritten, as MLflow's logged models allow)."""
        rows = clean_params(params)

        def run(conn: Connection) -> None:
            self._row(conn, model_id)
            self._upsert(conn, LMP, model_id, rows)
            self._touch(conn, model_id)

        self._write(run, "logged_model.log_params", model_id, {"params": rows})

    def log_metrics(self, model_id: str, points: list[ModelMetric]) -> None:
        """Record metric points of the model (each measured in a run, maybe on a dataset)."""
        clean = []
        for p in points:
            key, value, step, ts = validate_metric(p.key, p.value, p.step, p.timestamp)
            clean.append(
                {
                    "model_id": model_id,
                    "key": key,
                    # SQLite reads a NaN REAL back as NULL: stored as 0 flagged is_nan
                    "value": 0.0 if math.isnan(value) else value,
                    "is_nan": math.isnan(value),
                    "step": step,
                    "timestamp": ts,
                    "run_id": p.run_id,
                    "dataset_name": p.dataset_name or "",
                    "dataset_digest": p.dataset_digest or "",
                }
            )
        if not clean:
            return

        def run(conn: Connection) -> None:
            self._row(conn, model_id)
            for row in clean:  # the same point twice is one point (as MLflow's primary key)
                pk = [col == row[col.key] for col in LMM.primary_key.columns]
                conn.execute(delete(LMM).where(and_(*pk)))
            conn.execute(LMM.insert(), clean)

        self._write(run, "logged_model.log_metrics", model_id, {"metrics": len(clean)})

    def link(self, run_id: str, model_ids: dict[str, int], direction: str) -> None:
        """Record that the run produced (``output``, at a step) or used (``input``) models."""
        if direction not in ("input", "output"):
            raise Invalid(f"direction must be input or output; got {direction!r}")
        self.tracking.get_run(run_id)

        def run(conn: Connection) -> None:
            for mid, step in model_ids.items():
                self._row(conn, mid)
                conn.execute(
                    delete(LINK).where(
                        LINK.c.run_id == run_id,
                        LINK.c.model_id == mid,
                        LINK.c.direction == direction,
                    )
                )
                conn.execute(
                    LINK.insert().values(
                        run_id=run_id, model_id=mid, direction=direction, step=step
                    )
                )

        self._write(
            run, f"run.log_model_{direction}s", run_id, {"models": sorted(model_ids)}, "run"
        )

    def links_of(self, run_ids: list[str]) -> dict[str, dict[str, list[tuple[str, int]]]]:
        """``{run_id: {"input": [(model_id, step)], "output": [...]}}`` for the runs."""

        def run(conn: Connection) -> dict[str, dict[str, list[tuple[str, int]]]]:
            out: dict[str, dict[str, list[tuple[str, int]]]] = defaultdict(
                lambda: {"input": [], "output": []}
            )
            if run_ids:
                q = select(LINK).where(LINK.c.run_id.in_(run_ids)).order_by(LINK.c.model_id)
                for row in conn.execute(q):
                    out[row.run_id][row.direction].append((row.model_id, row.step))
            return dict(out)

        return self.db.read(run)

    def search(
        self,
        experiment_ids: list[str],
        *,
        filter_string: str | None = None,
        datasets: list[dict[str, str]] | None = None,
        order_by: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> tuple[list[LoggedModel], str | None]:
        """A page of the active models of the experiments that match, and the next token."""
        if not experiment_ids:
            raise Invalid(
                "experiment_ids must name at least one experiment", field="experiment_ids"
            )
        eids = [int(self.tracking.get_experiment(e).experiment_id) for e in experiment_ids]

        def run(conn: Connection) -> list[LoggedModel]:
            rows = conn.execute(
                self._visible(
                    and_(LM.c.experiment_id.in_(eids), LM.c.lifecycle_stage == "active")
                ).limit(_SCAN)
            ).all()
            return self._load(conn, rows)

        return search_models(
            self.db.read(run),
            filter_string=filter_string,
            datasets=datasets or [],
            order_by=order_by or [],
            max_results=max_results,
            page_token=page_token,
        )
