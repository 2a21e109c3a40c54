"""`loopstack audit ...`: verify the hash-chained audit log and read its events."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(no_args_is_help=True, help="Verify and read the audit log.")


@app.command("verify")
def verify() -> None:
    """Walk the whole chain; exit 1 naming the first broken link, if any."""
    from loopstack.cli._output import console, fail
    from loopstack.cli._stores import server_get, server_url
    from loopstack.config import settings

    base = server_url(settings())
    if base:
        data = server_get(base, "/audit/verify")
        ok, checked = bool(data["ok"]), int(data["checked"])
        broken, reason = data.get("broken_seq"), data.get("reason")
    else:
        from loopstack.cli._stores import local_stores
        from loopstack.store import audit

        result = audit.verify(local_stores().db)
        ok, checked, broken, reason = result.ok, result.checked, result.broken_seq, result.reason
    if ok:
        console().print(f"[green]OK[/]: the audit chain is intact ({checked} events verified)")
        return
    fail(
        f"the audit chain is broken at seq {broken}: {reason} ({checked} events before it verified)"
    )


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
    from loopstack.cli._stores import server_get, server_url
    from loopstack.config import settings

    object_type, object_id = _parse_object(obj)
    base = server_url(settings())
    if base:
        params: dict[str, Any] = {"limit": limit}
        if object_type:
            params["object_type"] = object_type
        if object_id:
            params["object_id"] = object_id
        events = server_get(base, "/audit/events", params)["events"]
    else:
        from loopstack.auth import project_in_use
        from loopstack.cli._stores import local_stores
        from loopstack.store import audit

        db, config = local_stores().db, settings()
        # no project chosen: the whole log, as the chain is one; else that project's events
        project_id = None if config.project is None else project_in_use(db, config)
        events = audit.events(
            db, object_type=object_type, object_id=object_id, project_id=project_id, limit=limit
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
