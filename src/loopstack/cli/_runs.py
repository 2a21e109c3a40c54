"""`loopstack runs ...`: list, show and compare runs."""

from __future__ import annotations

import contextlib
import functools
import re
from collections import Counter
from typing import TYPE_CHECKING

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from rich.table import Table

    from loopstack.cli._tables import Column
    from loopstack.store.artifacts import FileInfo
    from loopstack.tracking import Run, TrackingClient

app = typer.Typer(no_args_is_help=True, help="List, show and compare runs.")

#: tags too long to be worth a terminal line; shown with --all
HIDDEN_TAGS = ("loopstack.packages",)
MAX_ARTIFACTS = 500

_KEY_REF = re.compile(
    r"\b(metrics?|params?|parameters?)\.(`[^`]+`|\"[^\"]+\"|[\w\-./:]+)", re.IGNORECASE
)


def _referenced_keys(*texts: str) -> tuple[list[str], list[str]]:
    """Metric and param keys named in a filter or order-by, in order of appearance."""
    metrics: list[str] = []
    params: list[str] = []
    for text in texts:
        for kind, key in _KEY_REF.findall(text or ""):
            if len(key) >= 2 and key[0] == key[-1] and key[0] in '`"':
                key = key[1:-1]
            target = metrics if kind.lower().startswith("metric") else params
            if key not in target:
                target.append(key)
    return metrics, params


def _pick(referenced: list[str], counts: Counter[str], limit: int) -> list[str]:
    present = [k for k in referenced if k in counts]
    rest = sorted((k for k in counts if k not in present), key=lambda k: (-counts[k], k))
    return (present + rest)[:limit]


def resolve_experiment(client: TrackingClient, name_or_id: str) -> str:
    """An experiment id from a name (tried first) or an id."""
    from loopstack.errors import NotFound

    exp = client.get_experiment_by_name(name_or_id)
    if exp is not None:
        return exp.experiment_id
    if name_or_id.isdigit():
        return client.get_experiment(name_or_id).experiment_id
    raise NotFound(f"no experiment named {name_or_id!r}")


def _metric(run: Run, key: str) -> float | None:
    return run.metrics.get(key)


def _param(run: Run, key: str) -> str | None:
    return run.params.get(key)


def run_columns(runs: list[Run], filter_string: str, order_by: list[str]) -> list[Column]:
    """The columns of `runs list`: id, name, status, duration, then the metrics most runs
    have (those the filter or order-by name first), start time, then params."""
    from loopstack.cli._output import fmt_seconds, fmt_time
    from loopstack.cli._tables import Column

    want_metrics, want_params = _referenced_keys(filter_string, *order_by)
    metric_counts = Counter(k for r in runs for k in r.metrics)
    param_counts = Counter(k for r in runs for k in r.params)
    metric_keys = _pick(want_metrics, metric_counts, len(metric_counts))
    param_keys = _pick(want_params, param_counts, len(param_counts))

    def duration(r: Run) -> float | None:
        return (r.end_time - r.start_time) / 1000 if r.start_time and r.end_time else None

    columns = [
        Column("run_id", lambda r: r.run_id, priority=0),
        Column("name", lambda r: r.run_name, priority=1, abbreviate=True, max_width=40),
        Column("status", lambda r: r.status, priority=2),
        Column("duration", duration, fmt_seconds, priority=3, justify="right"),
    ]
    columns += [
        Column(
            f"metrics.{k}",
            functools.partial(_metric, key=k),
            priority=10 + i,
            justify="right",
        )
        for i, k in enumerate(metric_keys)
    ]
    columns.append(Column("start", lambda r: r.start_time, fmt_time, priority=1000))
    columns += [
        Column(
            f"params.{k}",
            functools.partial(_param, key=k),
            priority=1001 + i,
            abbreviate=True,
            max_width=30,
        )
        for i, k in enumerate(param_keys)
    ]
    return columns


@app.command("list")
def list_runs(
    experiment: list[str] = typer.Option(
        None,
        "--experiment",
        "-e",
        help="Experiment name or id (repeatable); default: every active experiment.",
    ),
    filter_string: str = typer.Option(
        "", "--filter", "-f", help='MLflow search filter, e.g. "metrics.auc > 0.9".'
    ),
    order_by: list[str] = typer.Option(
        None, "--order-by", "-o", help='e.g. "metrics.auc DESC" (repeatable).'
    ),
    max_results: int = typer.Option(
        100, "--max-results", "-n", min=1, help="At most this many runs."
    ),
    view: str = typer.Option("active", help="active, deleted or all runs."),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Runs with their status, duration and main metrics and params."""
    from loopstack.cli._tables import render_list
    from loopstack.tracking import TrackingClient

    client = TrackingClient()
    if experiment:
        ids = [resolve_experiment(client, e) for e in experiment]
    else:
        ids = [
            e.experiment_id for e in client.search_experiments(view="active", max_results=50_000)
        ]
    runs = (
        client.search_runs(
            ids, filter_string, order_by=order_by or None, max_results=max_results, view=view
        )
        if ids
        else []
    )
    render_list(
        runs,
        run_columns(runs, filter_string, order_by or []),
        title=f"{len(runs)} run{'s' if len(runs) != 1 else ''}",
        empty="No runs match",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


def _all_artifacts(client: TrackingClient, run_id: str) -> list[FileInfo]:
    files: list[FileInfo] = []
    pending = [""]
    while pending and len(files) < MAX_ARTIFACTS:
        for f in client.list_artifacts(run_id, pending.pop()):
            if f.is_dir:
                pending.append(f.path)
            else:
                files.append(f)
    return sorted(files, key=lambda f: f.path)[:MAX_ARTIFACTS]


def _kv_table(
    title: str, rows: list[tuple[str, str]], *, key: str = "key", value: str = "value"
) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column(key, overflow="fold")
    table.add_column(value, overflow="fold")
    for k, v in rows:
        table.add_row(k, v)
    return table


@app.command("show")
def show_run(
    run_id: str = typer.Argument(..., help="The run's id."),
    show_all: bool = typer.Option(False, "--all", help="Also show long tags (installed packages)."),
) -> None:
    """Everything about one run: info, params, latest metrics, tags, inputs, artifacts."""
    from rich.table import Table

    from loopstack.cli._output import console, fmt_duration, fmt_time, fmt_value, short
    from loopstack.errors import LoopstackError
    from loopstack.tracking import TrackingClient

    client = TrackingClient()
    run = client.get_run(run_id)
    out = console()
    exp_name = run.experiment_id
    with contextlib.suppress(LoopstackError):  # the experiment is only a label here
        exp_name = f"{client.get_experiment(run.experiment_id).name} ({run.experiment_id})"
    out.print(
        _kv_table(
            f"run {run.run_id}",
            [
                ("name", run.run_name),
                ("experiment", exp_name),
                ("status", run.status),
                ("lifecycle", run.lifecycle_stage),
                ("user", run.user_id),
                ("start", fmt_time(run.start_time)),
                ("end", fmt_time(run.end_time)),
                ("duration", fmt_duration(run.start_time, run.end_time)),
                ("artifact uri", run.artifact_uri),
                *([("parent run", run.parent_run_id)] if run.parent_run_id else []),
            ],
            key="field",
        )
    )

    if run.params:
        out.print(_kv_table("params", sorted(run.params.items())))
    if run.latest_metrics or run.metrics:
        table = Table(title="metrics (latest)", title_justify="left")
        for col, kw in (
            ("key", {}),
            ("value", {"justify": "right"}),
            ("step", {"justify": "right"}),
            ("time", {}),
        ):
            table.add_column(col, overflow="fold", **kw)  # type: ignore[arg-type]
        latest = {m.key: m for m in run.latest_metrics}
        for key in sorted(run.metrics):
            m = latest.get(key)
            table.add_row(
                key,
                fmt_value(run.metrics[key]),
                str(m.step) if m else "-",
                fmt_time(m.timestamp) if m else "-",
            )
        out.print(table)
    tags = sorted(run.tags.items())
    hidden = [k for k, _ in tags if k in HIDDEN_TAGS] if not show_all else []
    shown = [(k, v) for k, v in tags if k not in hidden]
    if shown:
        table = _kv_table("tags", [(k, v if show_all else short(v, 120)) for k, v in shown])
        if hidden:
            table.caption = f"hidden: {', '.join(hidden)} (use --all)"
            table.caption_justify = "left"
        out.print(table)
    if run.inputs:
        table = Table(title="inputs", title_justify="left")
        for col in ("name", "digest", "source type", "source", "context"):
            table.add_column(col, overflow="fold")
        for d in run.inputs:
            table.add_row(
                d.name,
                d.digest[:12],
                d.source_type,
                short(d.source, 60),
                d.tags.get("mlflow.data.context", "-"),
            )
        out.print(table)
    files = _all_artifacts(client, run.run_id)
    if files:
        table = Table(title="artifacts", title_justify="left")
        table.add_column("path", overflow="fold")
        table.add_column("size", justify="right")
        table.add_column("sha256")
        for f in files:
            table.add_row(f.path, "-" if f.size is None else f"{f.size:,}", (f.sha256 or "-")[:12])
        if len(files) >= MAX_ARTIFACTS:
            table.caption = f"showing the first {MAX_ARTIFACTS}"
        out.print(table)
    else:
        out.print("artifacts: none")


def _compare_rows(runs: list[Run]) -> list[tuple[str, list[str]]]:
    from loopstack.cli._output import fmt_duration, fmt_value

    rows: list[tuple[str, list[str]]] = [
        ("run_name", [r.run_name for r in runs]),
        ("status", [r.status for r in runs]),
        ("experiment_id", [r.experiment_id for r in runs]),
        ("duration", [fmt_duration(r.start_time, r.end_time) for r in runs]),
    ]
    for key in sorted({k for r in runs for k in r.params}):
        rows.append((f"params.{key}", [r.params.get(key, "-") for r in runs]))
    for key in sorted({k for r in runs for k in r.metrics}):
        rows.append((f"metrics.{key}", [fmt_value(r.metrics.get(key)) for r in runs]))
    return rows


@app.command("compare")
def compare_runs(
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids."),
    only_diff: bool = typer.Option(False, "--only-diff", help="Show only rows that differ."),
) -> None:
    """Params and latest metrics of several runs side by side; differing rows are marked."""
    from rich.table import Table

    from loopstack.cli._output import console, short
    from loopstack.errors import Invalid
    from loopstack.tracking import TrackingClient

    if len(run_ids) < 2:
        raise Invalid(f"expected at least two run ids to compare; got {len(run_ids)}")
    client = TrackingClient()
    runs = [client.get_run(r) for r in run_ids]
    table = Table(title=f"{len(runs)} runs compared (* = differs)", title_justify="left")
    table.add_column("", width=1)
    table.add_column("key", overflow="fold")
    for r in runs:
        table.add_column(r.run_id, overflow="fold")
    for key, values in _compare_rows(runs):
        differs = len(set(values)) > 1
        if only_diff and not differs:
            continue
        table.add_row(
            "*" if differs else "",
            key,
            *(short(v, 40) for v in values),
            style="bold yellow" if differs else None,
        )
    console().print(table)


def _register_reproduce() -> None:
    from loopstack.cli._reproduce import reproduce_run

    app.command("reproduce")(reproduce_run)


_register_reproduce()
