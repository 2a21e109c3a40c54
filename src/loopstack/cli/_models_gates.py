"""`loopstack models gates MODEL VERSION`: the gates recorded on a model version.

The command hangs on the `models` group (``loopstack.cli._models.app``). It reads
``loopstack.loop.gate_report``: the metadata store, or the server's
``/api/v1/models/{name}/versions/{version}/gates`` for an http(s) tracking URI. A failed
gate is shown, not an error: the exit code is 0 whenever the gates are shown.
"""

from __future__ import annotations

import json

import typer

from loopstack.cli._project import PROJECT
from loopstack.cli._tables import COLUMNS, CSV, WIDE

__all__ = ["gates", "register"]


def gates(
    name: str = typer.Argument(..., help="The registered model's name."),
    version: str = typer.Argument(..., help="The version whose gates to show."),
    project: str = PROJECT,
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = typer.Option(
        False, "--json", help="Print the recorded evaluation as JSON (every evidence field)."
    ),
    as_csv: bool = CSV,
) -> None:
    """A version's recorded gates: each gate, passed or failed, and the numbers behind it.

    What the loop's gate step recorded (the latest evaluation): a failed gate is what
    stops the loop, and a version rolls out only when every gate passed."""
    from loopstack.cli._output import console, fail, fmt_time
    from loopstack.cli._tables import Column, render_list
    from loopstack.loop import gate_report, recorded_gates

    if as_json and as_csv:
        fail("--json and --csv exclude each other", code=2)
    report = gate_report(name, version)
    if as_json:
        typer.echo(json.dumps(recorded_gates(name, version, report), indent=2, default=str))
        return
    out = console()
    if report is None:
        out.print(
            f"model {name!r} version {version} has no recorded gates "
            "(a loop's gate step records them: ls.loop.gate_version)",
            markup=False,
        )
        return
    cols = [
        Column("gate", lambda r: r.gate, priority=0, abbreviate=True, max_width=30),
        Column(
            "passed",
            lambda r: r.passed,
            lambda ok: "passed" if ok else "failed",
            priority=0,
            style=lambda ok: "green" if ok else "bold red",
        ),
        Column("evidence", lambda r: r.summary(), priority=1, abbreviate=True, max_width=60),
        Column("reason", lambda r: r.reason, priority=2, abbreviate=True, max_width=80),
        Column("details", lambda r: r.evidence, json.dumps, in_table=False),
    ]
    render_list(
        report.results,
        cols,
        title=report.summary(),
        empty=f"model {name!r} version {version}: an evaluation with no gates",
        columns_option=columns,
        wide=wide,
        as_json=False,
        as_csv=as_csv,
    )
    if as_csv:
        return
    who = f" by {report.recorded_by}" if report.recorded_by else ""
    out.print(
        f"recorded {fmt_time(report.evaluated_at)}{who}, "
        f"evaluation {(report.evaluation_id or '-')[:12]}",
        markup=False,
    )
    if report.passed:
        out.print("[green]every gate passed[/]: the version may roll out")
        return
    failed = report.failed
    names = ", ".join(r.gate for r in failed)
    out.print(f"[bold red]{len(failed)} of {len(report.results)} gates failed[/]: ", end="")
    out.print(names, markup=False)
    for r in failed:
        out.print(f"  {r.gate}: {r.reason}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the command to a `models` command group."""
    app.command("gates")(gates)


from loopstack.cli._models import app as _models_app  # noqa: E402 - the group it hangs on

register(_models_app)
