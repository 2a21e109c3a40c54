"""`loopstack audit ...`: verify the hash-chained audit log and read its events."""

from __future__ import annotations

from typing import Any

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

app = typer.Typer(no_args_is_help=True, help="Verify and read the audit log.")


@app.command("verify")
def verify(
    anchors: bool = typer.Option(
        False,
        "--anchors",
        help="Also check the signed heads `loopstack audit anchor` wrote (LOOPSTACK_AUDIT_"
        "ANCHOR_PATH): a cut or rewritten log is named.",
    ),
    anchor_path: str = typer.Option(
        None, "--anchor-path", help="Check the anchors at this path or URL (implies --anchors)."
    ),
) -> None:
    """Walk the whole chain, each link under its key; exit 1 naming the first broken one."""
    from loopstack.cli._output import console, fail
    from loopstack.store.audit_log import open_audit_log

    result = open_audit_log().verify(anchors=anchor_path or anchors)
    ok, checked, broken, reason = result.ok, result.checked, result.broken_seq, result.reason
    if ok:
        extra = f", {result.anchors} anchors matched" if anchor_path or anchors else ""
        console().print(
            f"[green]OK[/]: the audit chain is intact ({checked} events verified{extra})"
        )
        if result.legacy:
            console().print(
                f"note: the first {result.legacy} events predate the audit key (plain sha256 "
                "links): anyone with database access could rewrite those; anchors taken now "
                "pin them"
            )
        return
    if broken is None:  # outside the caller's events, or nothing to check against
        fail(f"the audit log did not verify: {reason} ({checked} events verified)")
    fail(
        f"the audit chain is broken at seq {broken}: {reason} ({checked} events before it verified)"
    )


@app.command("anchor")
def anchor(
    to: str = typer.Option(
        None,
        "--to",
        help="Append to this path or fsspec URL (default: LOOPSTACK_AUDIT_ANCHOR_PATH); keep "
        "it outside the database's reach.",
    ),
) -> None:
    """Verify the chain, then append its signed head (seq, hash, key id, time, MAC) to a
    file or object outside the database, for `audit verify --anchors`."""
    from loopstack.cli._output import console
    from loopstack.store.audit_log import open_audit_log

    got = open_audit_log().anchor(to=to)
    console().print(
        f"anchored seq {got['seq']} (hash {got['hash'][:12]}, key {got['kid']}) to {got['to']}"
    )


@app.command("rotate-key")
def rotate_key() -> None:
    """Add a new audit key to the key file (LOOPSTACK_AUDIT_KEY_FILE) and make it the
    active one; older keys stay to verify the events made under them."""
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores, server_url
    from loopstack.config import settings
    from loopstack.errors import Invalid

    if server_url(settings()) is not None:
        raise Invalid(
            "the audit key lives with the server's database: run `loopstack audit rotate-key` "
            "where the server runs (LOOPSTACK_TRACKING_URI unset)",
            field="tracking_uri",
        )
    keys = local_stores().db.audit_keys
    kid = keys.rotate()
    console().print(f"new audit key {kid} is active (in {keys.path}); running writers pick it up")


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
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """The newest audit events, oldest first (with --project: only that project's)."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list, show_id
    from loopstack.store.audit_log import open_audit_log

    object_type, object_id = _parse_object(obj)
    events = _chosen_log(open_audit_log).events(
        object_type=object_type, object_id=object_id, limit=limit
    )
    cols = [
        Column("seq", lambda e: e["seq"], show_id, priority=0, justify="right"),
        Column("time", lambda e: e["ts"], fmt_time, priority=1),
        Column("actor", lambda e: e["actor"], priority=2, abbreviate=True),
        Column("action", lambda e: e["action"], priority=3),
        Column("object", lambda e: f"{e['object_type']}/{e['object_id']}", priority=4),
        Column("hash", lambda e: e["hash"], lambda h: h[:12], priority=5),
    ]
    render_list(
        events,
        cols,
        title=f"audit events ({len(events)})",
        empty="No audit events match" if obj else "No audit events",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


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
