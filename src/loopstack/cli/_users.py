"""`loopstack users ...`: who may hold tokens and roles."""

from __future__ import annotations

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

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
def list_(
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Every user: name, display name, admin, created, status."""
    from loopstack.auth import list_users
    from loopstack.cli._output import fmt_time
    from loopstack.cli._stores import local_stores
    from loopstack.cli._tables import Column, render_list

    users = list_users(local_stores().db)
    cols = [
        Column("name", lambda u: u.name, priority=0),
        Column(
            "display_name",
            lambda u: u.display_name,
            lambda d: d or "-",
            priority=3,
            abbreviate=True,
        ),
        Column("admin", lambda u: u.is_admin, lambda a: "yes" if a else "-", priority=2),
        Column("created", lambda u: u.created_at, fmt_time, priority=4),
        Column("status", lambda u: "disabled" if u.disabled else "active", priority=1),
        Column("disabled", lambda u: u.disabled_at, fmt_time, priority=5),
    ]
    render_list(
        users,
        cols,
        title=f"users ({len(users)})",
        empty="No users",
        hint="create one with `loopstack users create NAME`",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


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
