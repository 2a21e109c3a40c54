"""On PostgreSQL, a run search by a param reads the params indexes, not the whole table.

The (key, value) index there is partial (values up to 1,000 characters, migration 0015),
and a planner reads a partial index only when the query names its predicate: it cannot
derive ``length(value) <= 1000`` from ``value = '7'``. So on a few thousand runs, analyzed,
each search's statements are explained: a read of params with no index condition (a
sequential scan, or a walk of a whole index with a filter) fails the test. (A LIKE, or an
order by a key of 1,000 values, is read whole at this size by choice: cheaper than the
index; at 100,000 runs, bench/ui_bench_pg.py shows them read through it.)
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import event

from loopstack.tracking import TrackingClient

pytestmark = pytest.mark.postgres

RUNS = 4000
_RUN_COLUMNS = (
    "run_id",
    "experiment_id",
    "name",
    "status",
    "start_time",
    "lifecycle_stage",
    "artifact_uri",
    "user_id",
)


def _runs(client: TrackingClient, eid: str) -> None:
    """``RUNS`` runs with a param ``model`` (5 values) and ``p`` (1,000), bulk inserted."""
    db = cast(Any, client.store).db
    ids = [uuid.UUID(int=i + 1).hex for i in range(RUNS)]
    runs = [(r, int(eid), f"r{i}", "FINISHED", i, "active", "x", "t") for i, r in enumerate(ids)]
    params = [(r, "model", f"m{i % 5}") for i, r in enumerate(ids)]
    params += [(r, "p", str(i % 1000)) for i, r in enumerate(ids)]

    def write(conn: Any) -> None:
        db.backend.bulk_insert(conn, "runs", _RUN_COLUMNS, runs)
        db.backend.bulk_insert(conn, "params", ("run_id", "key", "value"), params)

    db.write(write, actor="t", action="run.bulk_create", object_type="experiment", object_id=eid)
    for table in ("runs", "params"):
        db.write_unaudited(lambda conn, table=table: conn.exec_driver_sql(f"ANALYZE {table}"))


@pytest.mark.parametrize(
    "search",
    [
        {"filter_string": "params.p = '7'"},
        {"filter_string": "params.p IN ('7', '8')"},
        {"order_by": ["params.model DESC"], "max_results": 10},
    ],
    ids=["equal", "in", "order"],
)
def test_a_search_by_a_param_reads_the_params_indexes(
    search: dict[str, Any], pg_url: str, ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_DB_URL", pg_url)
    client = TrackingClient()
    eid = client.set_experiment("plans")
    _runs(client, eid)
    engine = cast(Any, client.store).db.engine
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, stmt: str, params: Any, *_: Any) -> None:
        if "params.key = " in stmt and stmt.lstrip().upper().startswith("SELECT"):
            statements.append((stmt, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        found, _ = client.store.search_runs([eid], **search)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert found and statements
    with engine.connect() as conn:
        for stmt, params in statements:
            plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {stmt}", params).scalar_one()
            assert not list(_unindexed_reads(plan[0]["Plan"])), f"{stmt}\n{plan}"


def _unindexed_reads(node: dict[str, Any]) -> Any:
    """The plan's reads of params without an index condition."""
    scans = ("Seq Scan", "Index Scan", "Index Only Scan")
    if (
        node.get("Relation Name") == "params"
        and node["Node Type"] in scans
        and "Index Cond" not in node
    ):
        yield node
    for child in node.get("Plans", []):
        yield from _unindexed_reads(child)


@pytest.mark.parametrize("direction", ["DESC", "ASC"])
def test_an_order_by_a_param_of_few_values_pages_through_every_run_in_order(
    direction: str, pg_url: str, ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key of 5 values is ordered one value at a time for the first pages and by one
    sort past them: pages of 700 runs cross both, and each value's boundary, and give
    the runs in MLflow's order (by the value, then newest first, then by id)."""
    monkeypatch.setenv("LOOPSTACK_DB_URL", pg_url)
    client = TrackingClient()
    eid = client.set_experiment("few-values")
    _runs(client, eid)
    ids = [uuid.UUID(int=i + 1).hex for i in range(RUNS)]
    newest_first = sorted(range(RUNS), key=lambda i: (-i, ids[i]))
    by_value = sorted(newest_first, key=lambda i: f"m{i % 5}", reverse=direction == "DESC")
    paged: list[str] = []
    token = None
    while True:
        page, token = client.store.search_runs(
            [eid], order_by=[f"params.model {direction}"], max_results=700, page_token=token
        )
        paged += [r.run_id for r in page]
        if token is None:
            break
    expected = [ids[i] for i in by_value]
    assert len(paged) == RUNS
    wrong = next((n for n, (a, b) in enumerate(zip(paged, expected, strict=True)) if a != b), None)
    assert wrong is None, f"run {wrong} of the order is not the one expected"
