"""`loopstack data ...`: register, show and profile datasets; validate data against a suite."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from rich.table import Table

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


def profile_table(profile: dict[str, Any], title: str) -> Table:
    """Schema and profile: one row per column, with a small histogram for numeric columns."""
    from rich.table import Table

    from loopstack.cli._output import fmt_value, short

    t = Table(title=title, title_justify="left")
    for col in (
        "column",
        "dtype",
        "nulls",
        "distinct",
        "min",
        "p50",
        "max",
        "mean",
        "std",
        "top / histogram",
    ):
        t.add_column(col, overflow="fold")
    for name, e in profile["columns"].items():
        q = e.get("quantiles") or {}
        if e.get("histogram"):
            extra = sparkline(e["histogram"]["counts"])
        else:
            extra = short(
                ", ".join(f"{t['value']} ({t['count']})" for t in e.get("top", [])[:3]), 40
            )
        t.add_row(
            name,
            e["dtype"],
            fmt_value(e["nulls"]),
            fmt_value(e.get("distinct")),
            fmt_value(e.get("min")),
            fmt_value(q.get("p50")),
            fmt_value(e.get("max")),
            fmt_value(e.get("mean")),
            fmt_value(e.get("std")),
            extra,
        )
    return t


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
) -> None:
    """A version's metadata, schema and column profile."""
    from loopstack.cli._output import console, fmt_time
    from loopstack.data import get_dataset

    dv: DatasetVersion = get_dataset(name, version)
    con = console()
    con.print(f"{dv.name} version {dv.version}  sha256 {dv.digest}")
    con.print(
        f"{dv.num_rows:,} rows x {dv.num_columns} columns, created {fmt_time(dv.created_at)}"
        f" by {dv.created_by}" + (f", from {dv.source_uri}" if dv.source_uri else "")
    )
    if dv.description:
        con.print(dv.description)
    con.print(profile_table(dv.profile, "profile"))


@app.command("profile")
def profile(
    path: Path = typer.Argument(..., help="Parquet or CSV file, or Parquet directory."),
) -> None:
    """Profile a file without registering it."""
    from loopstack._progress import phases
    from loopstack.cli._output import console
    from loopstack.data import profile_table as compute
    from loopstack.data._sources import to_arrow

    with phases(f"profiling {path.name}", ("reading", "profiling")) as step:
        step("reading")
        table = to_arrow(path)
        step("profiling")
        prof = compute(table)
    console().print(
        profile_table(prof, f"{path}: {prof['num_rows']:,} rows x {prof['num_columns']} columns")
    )


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
