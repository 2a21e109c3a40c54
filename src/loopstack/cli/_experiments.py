"""`loopstack experiments ...`: the experiments in the configured store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from loopstack.tracking import TrackingClient

app = typer.Typer(no_args_is_help=True, help="List experiments.")


def run_counts(client: TrackingClient) -> dict[str, int] | None:
    """Active runs per experiment id, in one query; None when the store is a remote server."""
    from loopstack.tracking._sql_store import SqlTrackingStore

    store = client.store
    if not isinstance(store, SqlTrackingStore):
        return None
    from loopstack.tracking._experiment_changes import active_run_counts

    return active_run_counts(store)


@app.command("list")
def list_experiments(
    view: str = typer.Option("active", help="Which experiments: active, deleted or all."),
) -> None:
    """Experiments with their lifecycle, creation time and number of runs."""
    from rich.table import Table

    from loopstack.cli._output import console, fmt_time
    from loopstack.errors import Invalid
    from loopstack.tracking import TrackingClient

    if view not in ("active", "deleted", "all"):
        raise Invalid(f"--view must be one of active, deleted, all; got {view!r} instead")
    client = TrackingClient()
    experiments = client.search_experiments(view=view, max_results=50_000)
    counts = run_counts(client)
    table = Table(title=f"experiments ({view})", title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("name", overflow="fold")
    table.add_column("lifecycle")
    table.add_column("created")
    if counts is not None:
        table.add_column("runs", justify="right")
    for exp in sorted(
        experiments, key=lambda e: int(e.experiment_id) if e.experiment_id.isdigit() else 0
    ):
        row = [exp.experiment_id, exp.name, exp.lifecycle_stage, fmt_time(exp.creation_time)]
        if counts is not None:
            row.append(str(counts.get(exp.experiment_id, 0)))
        table.add_row(*row)
    out = console()
    if not experiments:
        out.print(f"no experiments ({view})")
        return
    out.print(table)
