"""`loopstack runs reproduce RUN_ID`: rebuild a run, re-run it, compare its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from loopstack.tracking._reproduce import ReproductionPlan, ReproductionReport

__all__ = ["print_comparison", "print_plan", "reproduce_run"]

_PACKAGE_SOURCE = {
    "tag": "tag loopstack.packages",
    "artifact": "artifact environment/requirements.txt",
    "none": "none recorded",
}
_STATUS_STYLE = {
    "ok": "green",
    "missing": "bold red",
    "changed": "bold red",
    "unreadable": "bold red",
    "in-memory": "yellow",
}


def print_plan(out: Console, plan: ReproductionPlan) -> None:
    """The plan as tables: source, params, datasets; then warnings and problems."""
    from rich.table import Table

    from loopstack.cli._output import short

    table = Table(title=f"reproducing run {plan.run_id}", title_justify="left")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    pkgs = plan.packages
    rows = [
        ("run", f"{plan.run_name} (experiment {plan.experiment_id}, {plan.run_status})"),
        ("commit", (plan.commit or "-") + (" (dirty)" if plan.dirty else "")),
        (
            "repository",
            (plan.repo or "-") + ("" if plan.repo_is_local or not plan.repo else " (remote)"),
        ),
        ("entry point", plan.entry_point or plan.script or "-"),
        ("arguments", " ".join(plan.args) or "-"),
        ("start directory", plan.cwd),
        ("python", plan.python or "-"),
        (
            "packages",
            f"{len(pkgs.requirements)} ({_PACKAGE_SOURCE[pkgs.source]})"
            + (", cut: incomplete" if pkgs.truncated else ""),
        ),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)
    if plan.params:
        params = Table(title="params", title_justify="left")
        params.add_column("key", overflow="fold")
        params.add_column("value", overflow="fold")
        for k, v in sorted(plan.params.items()):
            params.add_row(k, short(v, 80))
        out.print(params)
    if plan.datasets:
        data = Table(title="datasets", title_justify="left")
        for col in ("name", "sha256", "source", "status"):
            data.add_column(col, overflow="fold")
        for d in plan.datasets:
            status = (
                d.status
                if d.status != "changed"
                else f"changed: now {(d.current_digest or '')[:12]}"
            )
            data.add_row(d.name, d.digest[:12], d.source, status, style=_STATUS_STYLE.get(d.status))
        out.print(data)
    for w in plan.warnings:
        out.print(f"[yellow]warning:[/] {w}", soft_wrap=True)


def print_comparison(out: Console, report: ReproductionReport, rtol: float, atol: float) -> None:
    from rich.table import Table

    from loopstack.cli._output import fmt_value

    table = Table(
        title=f"metrics: {report.plan.run_id} vs {report.new_run_id} "
        f"(rtol={rtol:g}, atol={atol:g})",
        title_justify="left",
    )
    table.add_column("key", overflow="fold")
    for col in ("original", "reproduced", "abs diff", "rel diff"):
        table.add_column(col, justify="right")
    table.add_column("match")
    for m in report.metrics:
        table.add_row(
            m.key,
            fmt_value(m.original),
            fmt_value(m.reproduced),
            fmt_value(m.abs_diff),
            fmt_value(m.rel_diff),
            "yes" if m.matches else "NO",
            style=None if m.matches else "bold red",
        )
    out.print(table)


def reproduce_run(
    run_id: str = typer.Argument(..., help="The run to reproduce."),
    reuse_env: bool = typer.Option(
        False,
        "--reuse-env",
        help="Run in this interpreter instead of a fresh venv with the recorded packages.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print the plan."),
    rtol: float = typer.Option(1e-6, "--rtol", min=0.0, help="Relative tolerance per metric."),
    atol: float = typer.Option(0.0, "--atol", min=0.0, help="Absolute tolerance per metric."),
    workdir: Path = typer.Option(
        None, "--workdir", help="Keep the checkout, venv and log here (default: a temp dir)."
    ),
    repo: Path = typer.Option(None, "--repo", help="A git repository holding the run's commit."),
    force: bool = typer.Option(
        False, "--force", help="Run even when inputs are missing or changed."
    ),
    timeout: float = typer.Option(
        None, "--timeout", min=0.0, help="Stop the entry point after this many seconds."
    ),
) -> None:
    """Rebuild a run (commit, params, datasets, packages), re-run it and compare metrics.

    Exit code 0 when every metric matches within tolerance, 1 otherwise.
    """
    from loopstack.cli._output import console, err_console
    from loopstack.tracking._reproduce import plan_reproduction, reproduce

    out = console()
    plan = plan_reproduction(run_id, repo=repo)
    print_plan(out, plan)
    err = err_console()
    with out.status("reproducing...") as status:

        def progress(message: str) -> None:
            status.update(message)
            out.print(f"[dim]->[/] {message}", soft_wrap=True)

        report = reproduce(
            run_id,
            workdir=workdir,
            fresh_env=not reuse_env,
            dry_run=dry_run,
            repo=repo,
            rtol=rtol,
            atol=atol,
            force=force,
            timeout=timeout,
            plan=plan,
            on_progress=progress,
        )
    for note in report.notes:
        out.print(f"[dim]note:[/] {note}", soft_wrap=True)
    if report.not_installed:
        out.print(
            "[yellow]warning:[/] could not install: " + ", ".join(report.not_installed),
            soft_wrap=True,
        )
    if report.status == "refused":
        for p in report.problems:
            err.print(f"[bold red]missing:[/] {p}", soft_wrap=True)
        err.print(
            "[bold red]error:[/] not reproducible here: nothing was run (--force runs anyway)",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    if report.status == "planned":
        out.print(
            "dry run: the plan is complete" if plan.ready else "dry run: the plan is incomplete"
        )
        raise typer.Exit(0 if report.ok else 1)
    if report.metrics:
        print_comparison(out, report, rtol, atol)
    for d in report.differences:
        out.print(f"[yellow]differs:[/] {d}", soft_wrap=True)
    if report.new_run_id:
        out.print(
            f"reproduced as run {report.new_run_id}"
            + (
                f" (also logged: {', '.join(report.other_new_runs)})"
                if report.other_new_runs
                else ""
            )
        )
    if report.workdir:
        out.print(f"work directory: {report.workdir}")
    if report.status == "failed":
        for p in report.problems[len(plan.problems) :] or report.problems:
            err.print(f"[bold red]error:[/] {p}", soft_wrap=True)
        if report.output_tail:
            err.print(report.output_tail, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if report.status == "matched":
        out.print("[green]reproduced: every metric matches[/]")
        return
    bad = [m.key for m in report.metrics if not m.matches]
    out.print(f"[bold red]not reproduced:[/] {len(bad)} metric(s) differ: {', '.join(bad)}")
    raise typer.Exit(1)
