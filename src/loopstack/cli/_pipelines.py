"""`loopstack pipelines ...`: run a pipeline, list and show its runs, resume one, draw its
graph, and what the step runs cost.

A pipeline is named by its entrypoint, ``package.module:name`` or ``path/file.py:name``
(the object ``@ls.pipeline`` made). ``list``, ``show``, ``graph RUN`` and ``cost`` read
through a server for an http(s) LOOPSTACK_TRACKING_URI (its /api/v1/pipelines routes);
``run`` and ``resume`` execute the steps on this machine and write the local metadata and
artifact stores, so through a server they are refused, saying what to do instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from loopstack.pipelines import PipelineRun

app = typer.Typer(
    no_args_is_help=True,
    help="Pipelines: run, list, show, resume, graph, cost.",
)

EXECUTOR: Any = typer.Option(
    "local", "--executor", "-e", help="local (in-process), process (a process per step) or ray."
)
ADDRESS: Any = typer.Option(
    None, "--address", help="Ray's address (auto, ray://host:10001); default: a local Ray."
)
WORKERS: Any = typer.Option(
    None, "--max-workers", help="Steps at once (process executor; default: the cores)."
)


def _local(verb: str) -> None:
    """Refuse a server: ``verb`` runs the pipeline's code here, against the local stores."""
    from loopstack.cli._stores import local_project

    local_project(
        f"pipelines {verb}",
        "pipeline",
        why=(
            f"names a server, which does not run pipelines: `pipelines {verb}` executes "
            "the steps on this machine and records them in the metadata and artifact "
            "stores it writes to. Unset LOOPSTACK_TRACKING_URI and point LOOPSTACK_DB_URL "
            "and LOOPSTACK_ARTIFACTS_URL at the server's stores to run it here; list, "
            "show, graph RUN and cost work through the server"
        ),
    )


def _params(values: list[str]) -> dict[str, Any]:
    """``-p rows=1000 -p name=x``: each value read as JSON when it parses, else as text."""
    import json

    from loopstack.errors import Invalid

    out: dict[str, Any] = {}
    for value in values:
        key, eq, raw = value.partition("=")
        if not eq or not key:
            raise Invalid(f"a --param is KEY=VALUE (rows=1000); got {value!r}", field="param")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _summary(run: PipelineRun) -> None:
    from loopstack.cli._output import console

    out = console()
    colour = {"FINISHED": "green", "FAILED": "red"}.get(run.status, "yellow")
    cached = sum(1 for s in run.steps.values() if s.status == "CACHED")
    out.print(
        f"[{colour}]{run.status}[/{colour}] pipeline {run.pipeline!r} "
        f"({len(run.steps)} steps, {cached} cached, attempt {run.attempt})"
    )
    out.print(f"run {run.run_uuid}")
    if run.error:
        out.print(f"[red]{run.error}[/red]")
        if run.status == "FAILED":
            out.print(f"resume it with: loopstack pipelines resume {run.run_uuid}")


def _finish(run: PipelineRun) -> None:
    _summary(run)
    if run.status != "FINISHED":
        raise typer.Exit(1)


def _failed(exc: Exception) -> None:
    """A step failed: say which, and how to go on from where it stopped."""
    from loopstack.cli._output import console, fail

    run_uuid = getattr(exc, "pipeline_run", None)
    if run_uuid:
        console().print(f"resume it with: loopstack pipelines resume {run_uuid}")
    fail(getattr(exc, "message", str(exc)))


@app.command("run")
def run(
    entrypoint: str = typer.Argument(..., help="package.module:pipeline or file.py:pipeline."),
    param: list[str] = typer.Option([], "--param", "-p", help="KEY=VALUE (JSON or text)."),
    executor: str = EXECUTOR,
    address: str | None = ADDRESS,
    max_workers: int | None = WORKERS,
) -> None:
    """Run a pipeline: unchanged steps come from the cache and say so."""
    from loopstack.cli._progress_steps import step_progress
    from loopstack.pipelines import run_entrypoint

    _local("run")
    params = _params(param)
    from loopstack.errors import StepFailed

    try:
        with step_progress() as on_event:
            result = run_entrypoint(
                entrypoint,
                params,
                executor=executor,
                address=address,
                max_workers=max_workers,
                on_event=on_event,
            )
    except StepFailed as exc:
        _failed(exc)
    _finish(result)


@app.command("resume")
def resume(
    run_uuid: str = typer.Argument(..., help="The pipeline run to finish."),
    executor: str | None = typer.Option(
        None, "--executor", "-e", help="local, process or ray (default: the run's own)."
    ),
    address: str | None = ADDRESS,
    max_workers: int | None = WORKERS,
) -> None:
    """Finish a failed or killed run: its finished steps are kept, the rest run."""
    from loopstack.cli._progress_steps import step_progress
    from loopstack.pipelines import resume as resume_run

    _local("resume")
    from loopstack.errors import StepFailed

    try:
        with step_progress() as on_event:
            result = resume_run(
                run_uuid,
                executor=executor,
                address=address,
                max_workers=max_workers,
                on_event=on_event,
            )
    except StepFailed as exc:
        _failed(exc)
    _finish(result)


@app.command("list")
def list_runs(
    pipeline: str | None = typer.Option(None, "--pipeline", help="Only this pipeline's runs."),
    limit: int = typer.Option(50, "--limit", help="The most recent runs to show."),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Pipeline runs, newest first: status, steps (cached), when, how long."""
    from loopstack.cli._output import fmt_duration, fmt_time
    from loopstack.cli._tables import Column, render_list
    from loopstack.errors import Invalid
    from loopstack.pipelines import list_runs as runs_of

    if limit < 1:
        raise Invalid(f"--limit must be at least 1; got {limit}", field="limit")
    found = runs_of(pipeline, limit)

    def steps(r: PipelineRun) -> str:
        cached = sum(1 for s in r.steps.values() if s.status == "CACHED")
        return f"{len(r.steps)} ({cached} cached)"

    cols = [
        Column("run", lambda r: r.run_uuid, priority=0),
        Column("pipeline", lambda r: r.pipeline, priority=1, abbreviate=True, max_width=30),
        Column("status", lambda r: r.status, priority=2),
        Column("steps", steps, priority=3),
        Column("created", lambda r: r.record.created_at, fmt_time, priority=4),
        Column(
            "took",
            lambda r: (r.record.created_at, r.record.finished_at),
            lambda v: fmt_duration(*v),
            priority=5,
        ),
        Column("executor", lambda r: r.record.executor, priority=6),
        Column("attempt", lambda r: r.attempt, priority=7, justify="right"),
    ]
    render_list(
        found,
        cols,
        title=f"pipeline runs ({len(found)})",
        empty="No pipeline runs",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("show")
def show(
    run_uuid: str = typer.Argument(..., help="The pipeline run."),
    as_json: bool = JSON,
) -> None:
    """One pipeline run: each step's status, attempts, time, CPU, memory and error."""
    from loopstack.cli._output import console, fmt_seconds
    from loopstack.cli._tables import Column, render_list
    from loopstack.pipelines import get_run

    found = get_run(run_uuid)
    if not as_json:
        _summary(found)
    order = [n["name"] for n in found.graph.get("nodes", [])] or list(found.steps)
    rows = [found.steps[name] for name in order if name in found.steps]

    def memory(value: int | None) -> str:
        return "-" if value is None else f"{value / (1 << 20):.0f} MiB"

    cols = [
        Column("step", lambda s: s.step, priority=0, abbreviate=True, max_width=24),
        Column("status", lambda s: s.status, priority=1),
        Column("tries", lambda s: s.attempts, priority=4, justify="right"),
        Column("wall", lambda s: s.wall_s, fmt_seconds, priority=2, justify="right"),
        Column("cpu", lambda s: s.cpu_s, fmt_seconds, priority=3, justify="right"),
        Column("memory", lambda s: s.peak_rss_bytes, memory, priority=5, justify="right"),
        Column("run_id", lambda s: s.tracking_run_id, priority=7),
        Column("error", lambda s: s.error, priority=6, abbreviate=True, max_width=30),
    ]
    render_list(rows, cols, title=f"steps of {run_uuid}", empty="No steps", as_json=as_json)
    if not as_json and found.tracking_run_id:
        console().print(f"tracked run: loopstack runs show {found.tracking_run_id}")


@app.command("graph")
def graph(
    target: str = typer.Argument(..., help="An entrypoint (module:pipeline) or a run id."),
    fmt: str = typer.Option("text", "--format", help="text or mermaid."),
) -> None:
    """The pipeline's steps in the order they run, and what each takes from which."""
    from loopstack.cli._output import console
    from loopstack.errors import Invalid
    from loopstack.pipelines import get_run, load_entrypoint
    from loopstack.pipelines._graph import render_stored, stored_to_mermaid

    if fmt not in ("text", "mermaid"):
        raise Invalid(f"--format must be text or mermaid; got {fmt!r}", field="format")
    width = console().width
    if ":" in target:
        dag = load_entrypoint(target).graph
        text = dag.render_text(width=width) if fmt == "text" else dag.to_mermaid()
    else:
        found = get_run(target)
        statuses = {name: s.status for name, s in found.steps.items()}
        text = (
            render_stored(found.graph, statuses, width)
            if fmt == "text"
            else stored_to_mermaid(found.graph, statuses)
        )
    typer.echo(text.rstrip("\n"))


@app.command("cost")
def cost(
    by: str = typer.Option("pipeline", "--by", help="pipeline or project."),
    since: str | None = typer.Option(
        None, "--since", help="Only runs of the last DURATION (7d, 12h) or since a date."
    ),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """What step runs cost: runs, steps, cached steps, wall and CPU time, peak memory."""
    from loopstack.cli._output import fmt_seconds
    from loopstack.cli._tables import Column, render_list
    from loopstack.pipelines import cost as cost_of

    rows = cost_of(by, _since(since))
    cols = [
        Column(by, lambda r: r.key, priority=0, abbreviate=True, max_width=30),
        Column("runs", lambda r: r.runs, priority=1, justify="right"),
        Column("steps", lambda r: r.steps, priority=2, justify="right"),
        Column("cached", lambda r: r.cached_steps, priority=3, justify="right"),
        Column("wall", lambda r: r.wall_s, fmt_seconds, priority=4, justify="right"),
        Column("cpu", lambda r: r.cpu_s, fmt_seconds, priority=5, justify="right"),
        Column(
            "peak_mem_mib",
            lambda r: round(r.peak_memory_mb, 1),
            priority=6,
            justify="right",
        ),
    ]
    render_list(
        rows,
        cols,
        title=f"cost per {by}",
        empty="No step runs",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


def _since(value: str | None) -> float | None:
    import datetime as dt
    import time

    from loopstack.errors import Invalid
    from loopstack.monitoring._build_report import parse_window

    if value is None:
        return None
    try:
        return time.time() - parse_window(value)
    except Invalid:
        pass
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(
            f"--since must be a duration (7d, 12h) or a date (2026-12-01); got {value!r}",
            field="since",
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp()
