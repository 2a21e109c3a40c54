"""`loopstack models gates MODEL VERSION`: the gates recorded on a model version.

The command hangs on the `models` group (``loopstack.cli._models.app``). It reads
``loopstack.loop.gate_report``: the metadata store, or the server's
``/api/v1/models/{name}/versions/{version}/gates`` for an http(s) tracking URI. A failed
gate is shown, not an error: the exit code is 0 whenever the gates are shown.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from loopstack.cli._project import PROJECT

if TYPE_CHECKING:
    from rich.table import Table

    from loopstack.loop import GateReport

__all__ = ["gates", "register"]


def gates(
    name: str = typer.Argument(..., help="The registered model's name."),
    version: str = typer.Argument(..., help="The version whose gates to show."),
    project: str = PROJECT,
    as_json: bool = typer.Option(
        False, "--json", help="Print the recorded evaluation as JSON (every evidence field)."
    ),
) -> None:
    """A version's recorded gates: each gate, passed or failed, and the numbers behind it.

    What the loop's gate step recorded (the latest evaluation): a failed gate is what
    stops the loop, and a version rolls out only when every gate passed."""
    from loopstack.cli._output import console
    from loopstack.loop import gate_report, recorded_gates

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
    out.print(_table(report))
    _verdict(report)


def _table(report: GateReport) -> Table:
    """One row per gate: its name, passed (green) or failed (red), and the numbers that
    decided it, wrapped rather than cut (they are the point)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=report.summary(), title_justify="left")
    table.add_column("gate", overflow="fold", max_width=30)
    table.add_column("passed", no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for r in report.results:
        ok = Text("passed", style="green") if r.passed else Text("failed", style="bold red")
        table.add_row(Text(r.gate), ok, Text(r.summary()))
    return table


def _verdict(report: GateReport) -> None:
    """Under the table: when and by whom, then every gate passed, or which failed and why."""
    from rich.text import Text

    from loopstack.cli._output import console, fmt_time

    out = console()
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
    said = (f"{len(failed)} of {len(report.results)} gates failed", "bold red")
    out.print(Text.assemble(said, ": ", ", ".join(r.gate for r in failed)))
    for r in failed:
        out.print(f"  {r.gate}: {r.reason}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the command to a `models` command group."""
    app.command("gates")(gates)


from loopstack.cli._models import app as _models_app  # noqa: E402 - the group it hangs on

register(_models_app)
