"""`loopstack users ...`: who may hold tokens and roles."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Create, list, disable and enable users.")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The user's login, e.g. 'alice' or 'alice@corp.com'."),
    display_name: str = typer.Option("", "--display-name", help="A human-readable name."),
    admin: bool = typer.Option(False, "--admin", help="Make them admin in every project."),
) -> None:
    """Register a user; give them roles with `loopstack projects add-member`."""
    from loopstack.auth import create_user
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    info = create_user(
        local_stores().db, name, display_name=display_name, is_admin=admin, actor=settings().actor
    )
    kind = "global admin" if info.is_admin else "user"
    console().print(f"created {kind} [bold]{info.name}[/]", highlight=False)


@app.command("list")
def list_() -> None:
    """Every user: name, display name, admin, created, status."""
    from rich.table import Table

    from loopstack.auth import list_users
    from loopstack.cli._output import console, fmt_time
    from loopstack.cli._stores import local_stores

    users = list_users(local_stores().db)
    out = console()
    if not users:
        out.print("no users; create one with `loopstack users create NAME`")
        return
    table = Table(title=f"users ({len(users)})", title_justify="left")
    for col in ("name", "display name", "admin", "created", "status"):
        table.add_column(col, overflow="fold")
    for u in users:
        status = f"[red]disabled {fmt_time(u.disabled_at)}[/]" if u.disabled else "[green]active[/]"
        table.add_row(
            u.name,
            u.display_name or "-",
            "yes" if u.is_admin else "-",
            fmt_time(u.created_at),
            status,
        )
    out.print(table)


@app.command("disable")
def disable(name: str = typer.Argument(..., help="The user to disable.")) -> None:
    """Disable a user: their tokens stop working at once; `users enable` undoes it."""
    from loopstack.auth import disable_user
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    disable_user(local_stores().db, name, actor=settings().actor)
    console().print(f"disabled user {name}; their tokens no longer work", highlight=False)


@app.command("enable")
def enable(name: str = typer.Argument(..., help="The user to enable again.")) -> None:
    """Enable a disabled user: their unrevoked tokens and memberships work again."""
    from loopstack.auth import enable_user
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    enable_user(local_stores().db, name, actor=settings().actor)
    console().print(f"enabled user {name}", highlight=False)
