"""`loopstack experiments ...`: the experiments in the configured store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

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
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Experiments with their lifecycle, creation time and number of runs."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list
    from loopstack.errors import Invalid
    from loopstack.tracking import TrackingClient

    if view not in ("active", "deleted", "all"):
        raise Invalid(f"--view must be one of active, deleted, all; got {view!r} instead")
    client = TrackingClient()
    experiments = sorted(
        client.search_experiments(view=view, max_results=50_000),
        key=lambda e: int(e.experiment_id) if e.experiment_id.isdigit() else 0,
    )
    counts = run_counts(client)
    cols = [
        Column("id", lambda e: e.experiment_id, priority=0, justify="right"),
        Column("name", lambda e: e.name, priority=1, abbreviate=True),
        Column("lifecycle", lambda e: e.lifecycle_stage, priority=3),
        Column("created", lambda e: e.creation_time, fmt_time, priority=4),
    ]
    if counts is not None:
        cols.append(
            Column("runs", lambda e: counts.get(e.experiment_id, 0), priority=2, justify="right")
        )
    render_list(
        experiments,
        cols,
        title=f"experiments ({view})",
        empty="No experiments" if view == "active" else f"No experiments ({view})",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )
