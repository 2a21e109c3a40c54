"""Run search in the SQL tracking store: the filter language compiled to SQL, and the
artifact verbs that find a run's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, exists, func, literal, or_, select

from loopstack.errors import Invalid
from loopstack.store.artifacts import FileInfo, sanitize_path
from loopstack.tracking._entities import (
    Run,
)
from loopstack.tracking._page_token import decode_token, encode_token
from loopstack.tracking._search import Comparison, parse_filter, parse_order_by
from loopstack.tracking._sql_base import (
    _MAX_RESULTS,
    LM,
    E,
    P,
    R,
    SqlStoreBase,
    T,
    _experiment_id,
    _view,
)

__all__ = ["SqlRunSearch"]


class SqlRunSearch(SqlStoreBase):
    """The search and artifact verbs of ``SqlTrackingStore``."""

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
        # Two phases: the ids of the page first (a narrow sort over the matching runs, not
        # of whole rows), then the page's rows by primary key.
        q = select(R.c.run_id).where(
            R.c.experiment_id.in_(eids), R.c.lifecycle_stage.in_(_view(view))
        )
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
            ids = list(conn.execute(q).scalars())
            more = len(ids) > max_results
            ids = ids[:max_results]
            by_id = {r.run_id: r for r in conn.execute(select(R).where(R.c.run_id.in_(ids)))}
            runs = self._hydrate(conn, [by_id[i] for i in ids])
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
