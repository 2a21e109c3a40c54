"""`loopstack token ...`: API tokens for a server with LOOPSTACK_AUTH=on."""

from __future__ import annotations

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API tokens.")


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="What the token is for, e.g. 'ci'."),
    user: str = typer.Option(
        None, "--user", help="Who the token acts as (default: LOOPSTACK_USER or $USER)."
    ),
    project: str = typer.Option(
        None,
        "--project",
        help="Let the token act only in this project (default: in "
        "every project its user belongs to).",
    ),
) -> None:
    """Create a token; its secret is printed once and never stored."""
    from loopstack.auth import create_token
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    config = settings()
    secret, info = create_token(
        local_stores().db, name=name, user=user or config.actor, project=project, actor=config.actor
    )
    out = console()
    scope = f", only in project {project!r}" if project is not None else ""
    out.print(
        f"created token [bold]{info.token_id}[/] ({info.name!r} for user {info.user!r}{scope})",
        highlight=False,
    )
    out.print(secret, markup=False, highlight=False, soft_wrap=True)
    out.print(
        "[yellow]This secret is shown only once: store it now.[/] Use it as "
        "LOOPSTACK_TOKEN, or send 'Authorization: Bearer <token>'."
    )


@app.command("list")
def list_(
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Every token: id, name, user, project, prefix, created, status."""
    from loopstack.auth import list_projects, list_tokens
    from loopstack.cli._output import fmt_time
    from loopstack.cli._stores import local_stores
    from loopstack.cli._tables import Column, render_list

    db = local_stores().db
    tokens = list_tokens(db)
    names = {p.project_id: p.name for p in list_projects(db)}
    cols = [
        Column("id", lambda t: t.token_id, priority=0),
        Column("name", lambda t: t.name, priority=1, abbreviate=True),
        Column("user", lambda t: t.user, priority=2, abbreviate=True),
        Column(
            "project",
            lambda t: None if t.project_id is None else names.get(t.project_id, t.project_id),
            lambda p: "(all)" if p is None else str(p),
            priority=4,
            abbreviate=True,
        ),
        Column("prefix", lambda t: t.prefix, lambda p: p + "…", priority=5),
        Column("created", lambda t: t.created_at, fmt_time, priority=6),
        Column("status", lambda t: "revoked" if t.revoked_at else "active", priority=3),
        Column("revoked", lambda t: t.revoked_at, fmt_time, priority=7),
    ]
    render_list(
        tokens,
        cols,
        title=f"tokens ({len(tokens)})",
        empty="No tokens",
        hint="create one with `loopstack token create --name NAME`",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("revoke")
def revoke(token_id: str = typer.Argument(..., help="The token's id (from `token list`).")) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    from loopstack.auth import revoke_token
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    revoke_token(local_stores().db, token_id, actor=settings().actor)
    console().print(f"revoked token {token_id}")
