"""`loopstack data ...`: register, show and profile datasets; validate data against a suite."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from loopstack.data import DatasetVersion, Suite

app = typer.Typer(
    no_args_is_help=True, help="Datasets: register, show, profile; validate data against a suite."
)

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    """A one-line text histogram: one bar per bin, scaled to the fullest bin."""
    top = max(counts, default=0)
    if top <= 0:
        return ""
    return "".join(
        " " if c == 0 else _BARS[min(len(_BARS) - 1, int(c / top * (len(_BARS) - 1) + 0.5))]
        for c in counts
    )


def _short_dtype(dtype: str) -> str:
    """An Arrow type without its parameters: ``timestamp[us, tz=UTC]`` -> ``timestamp``."""
    import re

    return re.sub(r"[\[<(].*$", "", dtype) or dtype


def _when(value: Any, entry: dict[str, Any]) -> str:
    """A timestamp bound of a column, as short as the column's span allows: the date when
    it spans a day or more (or has no times of day), else month-day and minute."""
    import datetime as dt

    from loopstack.cli._output import fmt_compact

    if not isinstance(value, str):
        return fmt_compact(value)
    try:
        at, low, high = (
            dt.datetime.fromisoformat(str(v)) for v in (value, entry["min"], entry["max"])
        )
    except (KeyError, TypeError, ValueError):
        return value
    midnights = all(t.time() == dt.time(0) for t in (low, high))
    if midnights or (high - low) >= dt.timedelta(days=1):
        return at.strftime("%Y-%m-%d")
    return at.strftime("%m-%d %H:%M")


def _top(values: list[dict[str, Any]] | None) -> str:
    from loopstack.cli._output import fmt_compact

    return ", ".join(f"{t['value']} ({fmt_compact(t['count'])})" for t in (values or [])[:3])


def _bound(key: str) -> Any:
    """The ``min`` / ``max`` column: numbers compact, timestamps shortened by the span of
    their column (which the cell's value alone does not know)."""
    from loopstack.cli._output import fmt_compact
    from loopstack.cli._tables import Column

    class Bound(Column):
        def text(self, row: Any) -> str:
            entry, value = row[1], self.get(row)
            if entry.get("kind") in ("timestamp", "date"):
                return _when(value, entry)
            return fmt_compact(value)

    return Bound(key, lambda row: row[1].get(key), priority=3, justify="right")


def profile_columns() -> list[Any]:
    """The columns of a profile table, one row per data column, most telling first: at 80
    columns name, type, nulls, distinct values, min, max and a text histogram (then the
    median, the top values, mean and std as width allows; ``--wide`` shows them all).
    Rows are ``(name, entry)`` pairs of a profile's ``columns``; numbers are compact,
    timestamps shortened; ``--json`` / ``--csv`` give the raw values."""
    from loopstack.cli._output import fmt_compact
    from loopstack.cli._tables import Column

    def stat(key: str) -> Any:
        return lambda row: row[1].get(key)

    def counts(row: tuple[str, dict[str, Any]]) -> list[int] | None:
        return (row[1].get("histogram") or {}).get("counts")

    def p50(row: tuple[str, dict[str, Any]]) -> Any:
        return (row[1].get("quantiles") or {}).get("p50")

    right: Any = {"justify": "right"}
    return [
        Column("column", lambda row: row[0], priority=0, abbreviate=True, max_width=24),
        Column("dtype", stat("dtype"), _short_dtype, priority=1, abbreviate=True, max_width=12),
        Column("nulls", stat("nulls"), fmt_compact, priority=2, **right),
        Column("distinct", stat("distinct"), fmt_compact, priority=4, **right),
        _bound("min"),
        Column("p50", p50, fmt_compact, priority=6, **right),
        _bound("max"),
        Column("histogram", counts, lambda c: sparkline(c or []), priority=5),
        Column("top", stat("top"), _top, priority=7, abbreviate=True, max_width=40),
        Column("mean", stat("mean"), fmt_compact, priority=8, **right),
        Column("std", stat("std"), fmt_compact, priority=9, **right),
    ]


def print_profile(
    profile: dict[str, Any],
    title: str,
    *,
    columns: str | None = None,
    wide: bool = False,
    as_json: bool = False,
    as_csv: bool = False,
) -> None:
    """Schema and profile, one row per column, fitted to the terminal (``N more columns
    (--wide shows all, --columns picks)``), or JSON / CSV."""
    from loopstack.cli._tables import render_list

    render_list(
        list(profile["columns"].items()),
        profile_columns(),
        title=title,
        empty="No columns",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
        compact=True,
    )


@app.command("register")
def register(
    name: str = typer.Argument(..., help="Dataset name."),
    path: Path = typer.Argument(..., help="Parquet or CSV file, or Parquet directory."),
    description: str = typer.Option("", "--description", "-d", help="What this data is."),
) -> None:
    """Store a file as a new version of NAME (the same content returns its existing version)."""
    from loopstack.cli._output import console
    from loopstack.data import list_datasets, register_dataset

    before = {v.digest for v in list_datasets(name)} if _exists(name) else set()
    dv = register_dataset(name, path, description=description)
    state = "already registered as" if dv.digest in before else "registered"
    console().print(
        f"{state} {dv.name} version {dv.version}: {dv.num_rows:,} rows x "
        f"{dv.num_columns} columns, sha256 {dv.digest[:12]}"
    )


def _exists(name: str) -> bool:
    from loopstack.data import list_datasets

    return bool(list_datasets(name))


@app.command("list")
def list_cmd(
    columns: str = COLUMNS, wide: bool = WIDE, as_json: bool = JSON, as_csv: bool = CSV
) -> None:
    """Every dataset with its newest version."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list, show_id
    from loopstack.data import list_datasets

    cols = [
        Column("name", lambda d: d.name, priority=0),
        Column("version", lambda d: d.version, show_id, priority=1, justify="right"),
        Column("rows", lambda d: d.num_rows, priority=2, justify="right"),
        Column("columns", lambda d: d.num_columns, priority=3, justify="right"),
        Column("sha256", lambda d: d.digest, lambda v: v[:12], priority=5),
        Column("created", lambda d: d.created_at, fmt_time, priority=4),
        Column("description", lambda d: d.description, priority=6, abbreviate=True, max_width=40),
    ]
    render_list(
        list_datasets(),
        cols,
        title="datasets",
        empty="No datasets",
        hint="register one with `loopstack data register NAME PATH`",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Dataset name."),
    version: int = typer.Option(None, "--version", "-v", help="Default: the newest."),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """A version's metadata, schema and column profile (--json / --csv: the profile's
    rows, raw)."""
    from loopstack.cli._output import console, fmt_time
    from loopstack.data import get_dataset

    dv: DatasetVersion = get_dataset(name, version)
    if not (as_json or as_csv):
        con = console()
        con.print(f"{dv.name} version {dv.version}", markup=False)
        con.print(
            f"{dv.num_rows:,} rows x {dv.num_columns} columns, created "
            f"{fmt_time(dv.created_at)} by {dv.created_by}"
            + (f", from {dv.source_uri}" if dv.source_uri else ""),
            markup=False,
        )
        con.print(f"sha256 {dv.digest}", markup=False)
        if dv.description:
            con.print(dv.description, markup=False)
    print_profile(dv.profile, "profile", columns=columns, wide=wide, as_json=as_json, as_csv=as_csv)


@app.command("profile")
def profile(
    path: Path = typer.Argument(..., help="Parquet or CSV file, or Parquet directory."),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Profile a file without registering it."""
    from loopstack._progress import phases
    from loopstack.data import profile_table as compute
    from loopstack.data._sources import to_arrow

    with phases(f"profiling {path.name}", ("reading", "profiling")) as step:
        step("reading")
        table = to_arrow(path)
        step("profiling")
        prof = compute(table)
    title = f"{path}: {prof['num_rows']:,} rows x {prof['num_columns']} columns"
    print_profile(prof, title, columns=columns, wide=wide, as_json=as_json, as_csv=as_csv)


def _data(ref: str) -> Any:
    """A path if one exists there, else a dataset ``NAME`` or ``NAME@VERSION``."""
    if Path(ref).exists():
        return Path(ref)
    from loopstack.data import get_dataset
    from loopstack.errors import NotFound

    name, _, version = ref.partition("@")
    try:
        return get_dataset(name, version or None)
    except NotFound as exc:
        raise NotFound(
            f"{ref!r} is neither a file nor a registered dataset ({exc.message})"
        ) from exc


@app.command("validate")
def validate(
    data: str = typer.Argument(..., help="A file, or a dataset NAME or NAME@VERSION."),
    suite: Path = typer.Option(None, "--suite", "-s", help="Suite JSON file."),
    infer_from: str = typer.Option(
        None, "--infer-from", help="Infer the suite from this reference (file or dataset)."
    ),
    save_suite: Path = typer.Option(None, "--save-suite", help="Write the suite used here."),
    show_rows: bool = typer.Option(False, "--rows", help="Print offending rows of each failure."),
) -> None:
    """Run a suite over data; exit code 1 when any check fails."""
    from loopstack.cli._output import console, fail
    from loopstack.data import Suite, infer_suite

    if suite is None and infer_from is None:
        fail("give --suite FILE or --infer-from REFERENCE")
    chosen: Suite = Suite.load(suite) if suite is not None else infer_suite(_data(infer_from))
    if save_suite is not None:
        chosen.save(save_suite)
    report = chosen.validate(_data(data))
    con = console()
    con.print(report.table())
    for r in report.failures:
        con.print(f"[red]✗ {r.name}[/]: {r.message}", soft_wrap=True)
        if show_rows:
            for row in r.failing_rows:
                con.print(f"    {row}", soft_wrap=True, markup=False)
    con.print(f"result {report.result_id}")
    if not report.passed:
        raise typer.Exit(1)
