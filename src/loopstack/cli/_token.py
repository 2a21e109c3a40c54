"""`loopstack token ...`: API tokens for a server with LOOPSTACK_AUTH=on."""

from __future__ import annotations

import typer

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
def list_() -> None:
    """Every token: id, name, user, project, prefix, created, revoked."""
    from rich.table import Table

    from loopstack.auth import list_projects, list_tokens
    from loopstack.cli._output import console, fmt_time
    from loopstack.cli._stores import local_stores

    db = local_stores().db
    tokens = list_tokens(db)
    out = console()
    if not tokens:
        out.print("no tokens; create one with `loopstack token create --name NAME`")
        return
    table = Table(title=f"tokens ({len(tokens)})", title_justify="left")
    names = {p.project_id: p.name for p in list_projects(db)}
    for col in ("token id", "name", "user", "project", "prefix", "created", "status"):
        table.add_column(col, no_wrap=col == "token id", overflow="fold")
    for t in tokens:
        status = f"revoked {fmt_time(t.revoked_at)}" if t.revoked_at else "[green]active[/]"
        scope = "(all)" if t.project_id is None else names.get(t.project_id, str(t.project_id))
        table.add_row(
            t.token_id, t.name, t.user, scope, t.prefix + "…", fmt_time(t.created_at), status
        )
    out.print(table)


@app.command("revoke")
def revoke(token_id: str = typer.Argument(..., help="The token's id (from `token list`).")) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    from loopstack.auth import revoke_token
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    revoke_token(local_stores().db, token_id, actor=settings().actor)
    console().print(f"revoked token {token_id}")
