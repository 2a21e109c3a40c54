"""Run search in the SQL tracking store: the filter language compiled to SQL, and the
artifact verbs that find a run's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
)

from loopstack.errors import Invalid
from loopstack.store.artifacts import FileInfo, sanitize_path
from loopstack.tracking._entities import (
    Run,
)
from loopstack.tracking._page_token import decode_token, encode_token
from loopstack.tracking._search import Comparison, OrderKey, parse_filter, parse_order_by
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

#: after the keys asked for, runs are in this order (newest first, then by id)
_TIE_BREAK = (R.c.start_time.desc(), R.c.run_id)
#: on PostgreSQL the params index holds the values of up to 1,000 characters and a
#: second one the longer (migrations 0015, 0016): a query names which it reads, or the
#: planner reads neither (it cannot prove a partial index's predicate from ``value = ?``)
_INDEXED_CHARS = 1000
_SHORT = func.length(P.c.value) <= _INDEXED_CHARS
_LONG = func.length(P.c.value) > _INDEXED_CHARS


#: a param of at most this many values is ordered one value at a time (PostgreSQL) ...
_FEW_VALUES = 50
#: ... for the rows before this offset: each value's runs are found by walking all the
#: runs newest first, so a deep page walks many; past it, sorting a value's runs wins
_NEAR_ROWS = 2000
_DISTINCT_VALUES = text(
    # the key's distinct short values in order, one probe of the partial index each
    # (a loose index scan), stopping past _FEW_VALUES
    """WITH RECURSIVE v(value) AS (
        (SELECT value FROM params WHERE key = :key AND length(value) <= :short
         ORDER BY value LIMIT 1)
        UNION ALL
        SELECT (SELECT p.value FROM params p WHERE p.key = :key
                AND length(p.value) <= :short AND p.value > v.value ORDER BY p.value LIMIT 1)
        FROM v WHERE v.value IS NOT NULL
    )
    SELECT value FROM v WHERE value IS NOT NULL LIMIT :limit"""
)


def _few_values(conn: Connection, key: str) -> list[str] | None:
    """The values of param ``key`` in order when it has at most ``_FEW_VALUES`` of them
    (all short), else None. An order by such a key ties thousands of runs on a value:
    walking the runs newest first for each value beats sorting a value's runs by start
    time (PostgreSQL, 100,000 runs of 5 values: ~450 ms down to tens)."""
    bounds = {"key": key, "short": _INDEXED_CHARS, "limit": _FEW_VALUES + 1}
    got = conn.execute(_DISTINCT_VALUES, bounds).scalars()
    values = list(got)
    return values if len(values) <= _FEW_VALUES else None


def _narrower(c: Comparison) -> bool:
    """Whether clause ``c`` reads fewer runs through its own index than the experiment's
    runs index does (a key's (key, value) index; the primary key for named run ids)."""
    return c.kind != "attribute" or (c.key == "run_id" and c.op in ("=", "IN"))


def _without_key(conds: list[Any], table: Any, key: str) -> Select[Any]:
    """The matching runs that have no ``key`` in ``table``, newest first: an order by a
    key puts them last, as MLflow does."""
    without = R.c.run_id.not_in(select(table.c.run_id).where(table.c.key == key))
    return select(R.c.run_id).where(*conds, without).order_by(*_TIE_BREAK)


def _page(conn: Connection, groups: list[Select[Any]], offset: int, limit: int) -> list[str]:
    """Ids ``offset`` .. ``offset + limit`` of the groups' rows one after the other (each
    group ordered): each group is asked for its part of the page; a group the offset
    passes whole is counted."""
    ids: list[str] = []
    for q in groups:
        if len(ids) == limit:
            break
        got = list(conn.execute(q.offset(offset).limit(limit - len(ids))).scalars())
        if not got and offset:
            offset -= conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            offset = max(offset, 0)
        else:
            offset = 0
        ids += got
    return ids


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
        # The matching runs read from the (key, value) index, not one lookup per run.
        found = select(table.c.run_id).where(table.c.key == c.key, matches)
        if c.kind == "param" and self.db.dialect == "postgresql":
            values = [c.value] if isinstance(c.value, str) else list(c.value)  # type: ignore[arg-type]
            if c.op in ("=", "IN") and all(len(str(v)) <= _INDEXED_CHARS for v in values):
                # only a short value can equal these: the partial index holds them all
                return R.c.run_id.in_(found.where(_SHORT))
            # the short values from the partial (key, value) index, the long ones from theirs
            return R.c.run_id.in_(union_all(found.where(_SHORT), found.where(_LONG)))
        return R.c.run_id.in_(found)

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
        experiment: Any = R.c.experiment_id
        if self.db.dialect == "sqlite" and any(_narrower(c) for c in comparisons):
            # SQLite keeps no statistics and takes experiment_id = ? for the narrowest
            # index; with a clause on a key, that key's index is, and with run ids named,
            # the primary key (`+ 0` hides the other).
            experiment = experiment + 0
        conds: list[Any] = [experiment.in_(eids), R.c.lifecycle_stage.in_(_view(view))]
        if self.project_id is not None:
            conds.append(
                R.c.experiment_id.in_(
                    select(E.c.experiment_id).where(E.c.project_id == self.project_id)
                )
            )
        # Equalities first: SQLite reads the runs from the first key clause's index and
        # probes the others, and an equality is mostly the narrowest.
        conds += [
            self._condition(c) for c in sorted(comparisons, key=lambda c: c.op not in ("=", "IN"))
        ]
        keyed = len(orders) == 1 and orders[0].kind in ("metric", "param")

        def run(conn: Connection) -> tuple[list[Run], str | None]:
            if keyed:
                only_short = self._only_short(conn, orders[0])
                near = only_short and offset < _NEAR_ROWS
                few = _few_values(conn, orders[0].key) if near else None
                if few is not None:
                    groups = self._by_each_value(conds, orders[0], few)
                else:
                    groups = self._keyed_order(conds, orders[0], only_short)
            else:
                groups = [self._sorted(conds, orders)]
            ids = _page(conn, groups, offset, max_results + 1)
            more = len(ids) > max_results
            ids = ids[:max_results]
            by_id = {r.run_id: r for r in conn.execute(select(R).where(R.c.run_id.in_(ids)))}
            runs = self._hydrate(conn, [by_id[i] for i in ids])
            return runs, (encode_token(offset + max_results) if more else None)

        return self.db.read(run)

    @staticmethod
    def _sorted(conds: list[Any], orders: list[OrderKey]) -> Select[Any]:
        """The ids of the matching runs in the order asked, as one sort of them all."""
        q = select(R.c.run_id).where(*conds)
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
        return q.order_by(*sort_cols, *_TIE_BREAK)

    def _only_short(self, conn: Connection, o: OrderKey) -> bool:
        """Whether an order by param ``o`` may walk PostgreSQL's partial (key, value)
        index alone: no value of the key is longer than it holds (one probe of the index
        of the long values). Elsewhere False: the one index holds every value."""
        if o.kind != "param" or self.db.dialect != "postgresql":
            return False
        long = exists().where(P.c.key == o.key, _LONG)
        return not conn.execute(select(long)).scalar_one()

    @staticmethod
    def _keyed_order(conds: list[Any], o: OrderKey, only_short: bool) -> list[Select[Any]]:
        """The order by one metric or param as the groups it sorts into, each walked in
        the (key, value) index's order: runs with a value (by it, then the tie-break),
        for a metric those whose value is NaN, then the runs without the key. The same
        order as ``_sorted`` gives, without sorting every matching run. ``only_short``:
        the key's values all fit PostgreSQL's partial index, which the query then names."""
        table = LM if o.kind == "metric" else P
        value = table.c.value.asc() if o.ascending else table.c.value.desc()
        keyed = select(table.c.run_id).join(R, R.c.run_id == table.c.run_id).where(*conds)
        keyed = keyed.where(table.c.key == o.key, *([_SHORT] if only_short else []))
        if o.kind == "param":
            groups = [keyed.order_by(value, *_TIE_BREAK)]
        else:
            groups = [
                keyed.where(table.c.is_nan == false()).order_by(value, *_TIE_BREAK),
                keyed.where(table.c.is_nan == true()).order_by(*_TIE_BREAK),
            ]
        return [*groups, _without_key(conds, table, o.key)]

    @staticmethod
    def _by_each_value(conds: list[Any], o: OrderKey, values: list[str]) -> list[Select[Any]]:
        """The order by param ``o`` of a few values as one group per value, in order, each
        the runs with that value newest first (walked in the runs' own start-time order,
        the value probed run by run), then the runs without the key: the order
        ``_keyed_order`` gives, without sorting all the runs tied on one value."""
        runs = select(R.c.run_id).where(*conds)
        groups = [
            runs.where(
                R.c.run_id.in_(select(P.c.run_id).where(P.c.key == o.key, P.c.value == v, _SHORT))
            ).order_by(*_TIE_BREAK)
            for v in (values if o.ascending else reversed(values))
        ]
        return [*groups, _without_key(conds, P, o.key)]

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
