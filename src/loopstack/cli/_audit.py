"""`loopstack audit ...`: verify the hash-chained audit log and read its events."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(no_args_is_help=True, help="Verify and read the audit log.")


@app.command("verify")
def verify() -> None:
    """Walk the whole chain; exit 1 naming the first broken link, if any."""
    from loopstack.cli._output import console, fail
    from loopstack.store.audit_log import open_audit_log

    result = open_audit_log().verify()
    ok, checked, broken, reason = result.ok, result.checked, result.broken_seq, result.reason
    if ok:
        console().print(f"[green]OK[/]: the audit chain is intact ({checked} events verified)")
        return
    where = f" at seq {broken}" if broken is not None else ""  # None: outside your events
    fail(f"the audit chain is broken{where}: {reason} ({checked} events before it verified)")


def _parse_object(obj: str | None) -> tuple[str | None, str | None]:
    if not obj:
        return None, None
    kind, _, oid = obj.partition("/")  # ids may contain '/', e.g. artifact paths
    # Plural forms read naturally on the command line: models/churn/3, runs/<id>.
    kind = _PLURALS.get(kind, kind)
    return kind or None, oid or None


_PLURALS = {
    "models": "model",
    "runs": "run",
    "experiments": "experiment",
    "artifacts": "artifact",
    "tokens": "token",
    "projects": "project",
    "users": "user",
}


@app.command("log")
def log(
    obj: str = typer.Option(
        None, "--object", help="Only events for TYPE or TYPE/ID, e.g. run/<run id>."
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="The newest N events."),
) -> None:
    """The newest audit events, oldest first (with --project: only that project's)."""
    from rich.table import Table

    from loopstack.cli._output import console, fmt_time
    from loopstack.store.audit_log import open_audit_log

    object_type, object_id = _parse_object(obj)
    events = _chosen_log(open_audit_log).events(
        object_type=object_type, object_id=object_id, limit=limit
    )
    out = console()
    if not events:
        out.print("no audit events" + (f" for {obj}" if obj else ""))
        return
    table = Table(title=f"audit events ({len(events)})", title_justify="left")
    table.add_column("seq", justify="right")
    table.add_column("time", no_wrap=True)
    table.add_column("actor")
    table.add_column("action")
    table.add_column("object", overflow="fold")
    table.add_column("hash")
    for ev in events:
        table.add_row(
            str(ev["seq"]),
            fmt_time(ev["ts"]),
            ev["actor"],
            ev["action"],
            f"{ev['object_type']}/{ev['object_id']}",
            ev["hash"][:12],
        )
    out.print(table)


def _chosen_log(open_audit_log: Any) -> Any:
    """The audit log to show: through a server, the request's project; locally the whole
    log when no project is chosen (the chain is one), else that project's events."""
    from loopstack.config import settings
    from loopstack.store.remote import server_url

    config = settings()
    if server_url(config) is not None or config.project is None:
        return open_audit_log(config)
    from loopstack.auth import project_in_use
    from loopstack.cli._stores import local_stores

    return open_audit_log(config, project_id=project_in_use(local_stores().db, config))
