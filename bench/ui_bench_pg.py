"""The UI bench's HTTP figures with the metadata database on PostgreSQL.

The same data as ``bench/ui_bench.py`` (one experiment of ``--runs`` runs x 10 metrics x
20 params, seeded, written 2,000 runs a transaction through the metadata database's
audited ``write``) in a PostgreSQL schema of its own (``--schema``, made if missing and
kept between runs of the bench, reused when it already holds the experiment; ``--drop``
removes it at the end), ``ANALYZE``d after the load, served by ``loopstack server`` with
``LOOPSTACK_DB_URL`` naming it, and measured as ``ui_bench`` measures over HTTP: the
first page, a filter, ordered by a metric, ordered by a param, page 50.

    python bench/ui_bench_pg.py                    # 100,000 runs in schema ui_bench_100000
    python bench/ui_bench_pg.py --runs 20000 --db postgresql+psycopg://postgres@host/db
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ui_bench  # noqa: E402

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _plain(url: str) -> str:
    """``url`` as libpq takes it (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def schema_url(base: str, schema: str) -> str:
    """``base`` with its search_path set to ``schema``."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def make_data(db_url: str, home: Path, runs: int, seed: int) -> str:
    """Create (or find) the experiment of ``runs`` runs in ``db_url``; its id. The tables
    are ANALYZEd after a load, as a user should after any bulk load."""
    os.environ["LOOPSTACK_HOME"] = str(home)
    os.environ["LOOPSTACK_DB_URL"] = db_url
    for var in ("LOOPSTACK_TRACKING_URI", "LOOPSTACK_TOKEN"):
        os.environ.pop(var, None)
    from loopstack.tracking import TrackingClient

    client = TrackingClient()
    exp = client.get_experiment_by_name(ui_bench.EXPERIMENT)
    if exp is not None:
        have = ui_bench._count_runs(client, exp.experiment_id)
        if have == runs:
            print(f"data: reusing {runs:,} runs in {db_url}", flush=True)
            return exp.experiment_id
        raise SystemExit(f"{db_url} holds {have:,} runs in {ui_bench.EXPERIMENT!r}, not {runs:,}")
    eid = client.create_experiment(ui_bench.EXPERIMENT)
    t0 = time.perf_counter()
    location = client.get_experiment(eid).artifact_location
    store: Any = client.store
    ui_bench._bulk(_BoolNan(store.db), location, eid, runs, seed, t0)
    print(f"data: {runs:,} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    store.db.engine.dispose()
    analyze(db_url)
    print(f"data: ANALYZE in {time.perf_counter() - t0:.0f} s", flush=True)
    return eid


class _BoolNan:
    """A store for ``ui_bench._bulk`` whose ``is_nan`` values are booleans: ``_bulk``
    writes SQLite's 0/1, which PostgreSQL's boolean column refuses."""

    def __init__(self, db: Any) -> None:
        self.db = self
        self.backend = self
        self.write = db.write
        self._insert = db.backend.bulk_insert

    def bulk_insert(
        self, conn: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        if "is_nan" in columns:
            i = columns.index("is_nan")
            rows = [(*r[:i], bool(r[i]), *r[i + 1 :]) for r in rows]
        self._insert(conn, table, columns, rows)


def analyze(db_url: str) -> None:
    """``ANALYZE`` the tables run search reads."""
    import psycopg

    with psycopg.connect(_plain(db_url), autocommit=True) as conn:
        for table in ("runs", "run_tags", "params", "metrics", "latest_metrics", "experiments"):
            conn.execute(f"ANALYZE {table}")  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    """Make the data in PostgreSQL, serve it, measure over HTTP; print a Markdown table."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--db", default=DEFAULT_DB, help=f"PostgreSQL server (default {DEFAULT_DB})")
    ap.add_argument("--schema", help="kept between runs (default ui_bench_<runs>)")
    ap.add_argument("--drop", action="store_true", help="drop the schema at the end")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.runs < 2 * ui_bench.PAGE:
        ap.error(f"--runs must be at least {2 * ui_bench.PAGE}")
    import psycopg

    schema = args.schema or f"ui_bench_{args.runs}"
    with psycopg.connect(_plain(args.db), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')  # type: ignore[arg-type]
    db_url = schema_url(args.db, schema)
    home = Path(tempfile.mkdtemp(prefix="ui-bench-pg-"))
    proc = None
    try:
        eid = make_data(db_url, home, args.runs, args.seed)
        proc, url = ui_bench.start_server(home)
        results: dict[str, Any] = {
            "runs": args.runs,
            "db": "postgresql",
            "api": ui_bench.measure_api(url, eid, args.repeat, args.runs),
        }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
        if args.drop:
            with psycopg.connect(_plain(args.db), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')  # type: ignore[arg-type]
    print(
        f"\n{args.runs:,} runs x {ui_bench.N_METRICS} metrics x {ui_bench.N_PARAMS} params, "
        f"one experiment, PostgreSQL; median of {args.repeat} (min-max)\n"
    )
    print("| loopstack on PostgreSQL | time | target |\n| --- | --- | --- |")
    for name, s in results["api"].items():
        print(ui_bench._row(f"`runs/search` (HTTP), {name}", s, ui_bench.TARGET_MS["api"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
