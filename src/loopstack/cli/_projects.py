"""`loopstack projects ...`: tenants, their members' roles and their approval policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from rich.console import Console

    from loopstack.auth import ApprovalPolicy

app = typer.Typer(
    no_args_is_help=True, help="Create projects, manage their members' roles and approval policy."
)

_ROLES = "viewer, data-scientist, ml-engineer or admin"


def _print_policy(out: Console, policy: ApprovalPolicy) -> None:
    out.print("approval policy:", highlight=False)
    for field, value in policy.model_dump().items():
        shown = ", ".join(value) if isinstance(value, list) else str(value).lower()
        out.print(f"  {field}: {shown or '-'}", highlight=False, markup=False)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Lowercase letters, digits, '-' and '_'."),
    description: str = typer.Option("", "--description", "-d", help="What the project is for."),
) -> None:
    """Create a project, with the default approval policy."""
    from loopstack.auth import create_project
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    info = create_project(local_stores().db, name, description, actor=settings().actor)
    console().print(f"created project [bold]{info.name}[/] (id {info.project_id})", highlight=False)


@app.command("list")
def list_(
    user: str = typer.Option(None, "--user", help="Only the projects this user holds a role in."),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Every project (or a user's): id, name, members, created, description."""
    from loopstack.auth import list_projects, members
    from loopstack.cli._output import fmt_time
    from loopstack.cli._stores import local_stores
    from loopstack.cli._tables import Column, render_list, show_id

    db = local_stores().db
    projects = list_projects(db, user=user)
    counts = {p.project_id: len(members(db, p.project_id)) for p in projects}
    cols = [
        Column("id", lambda p: p.project_id, show_id, priority=0, justify="right"),
        Column("name", lambda p: p.name, priority=1),
        Column("members", lambda p: counts[p.project_id], priority=2, justify="right"),
        Column("created", lambda p: p.created_at, fmt_time, priority=3),
        Column(
            "description",
            lambda p: p.description,
            lambda d: d or "-",
            priority=4,
            abbreviate=True,
            max_width=60,
        ),
    ]
    title = f"projects of {user} ({len(projects)})" if user else f"projects ({len(projects)})"
    render_list(
        projects,
        cols,
        title=title,
        empty=f"No projects match user {user!r}" if user else "No projects",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("show")
def show(project: str = typer.Argument(..., help="The project's name.")) -> None:
    """One project: its description, approval policy and members with their roles."""
    from rich.table import Table

    from loopstack.auth import get_project, members
    from loopstack.cli._output import console, fmt_time
    from loopstack.cli._stores import local_stores

    db = local_stores().db
    info = get_project(db, project)
    out = console()
    out.print(
        f"project [bold]{info.name}[/] (id {info.project_id}), created {fmt_time(info.created_at)}",
        highlight=False,
    )
    if info.description:
        out.print(info.description, markup=False, highlight=False)
    _print_policy(out, info.policy)
    people = members(db, info.project_id)
    if not people:
        out.print(
            "no members; add one with `loopstack projects add-member "
            f"{info.name} USER --role ROLE`",
            highlight=False,
        )
        return
    table = Table(title=f"members ({len(people)})", title_justify="left")
    for col in ("user", "display name", "role"):
        table.add_column(col, overflow="fold")
    for m in people:
        table.add_row(m.user, m.display_name or "-", m.role.value)
    out.print(table)


@app.command("add-member")
def add_member(
    project: str = typer.Argument(..., help="The project's name."),
    user: str = typer.Argument(..., help="An existing user (see `loopstack users list`)."),
    role: str = typer.Option(..., "--role", "-r", help=f"One of {_ROLES}."),
) -> None:
    """Give a user a role in a project (a member already there gets the new role)."""
    from loopstack.auth import add_member as add
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    member = add(local_stores().db, project, user, role, actor=settings().actor)
    console().print(
        f"{member.user} is now {member.role.value} in project {project}", highlight=False
    )


@app.command("remove-member")
def remove_member(
    project: str = typer.Argument(..., help="The project's name."),
    user: str = typer.Argument(..., help="The member to remove."),
) -> None:
    """Take a user's role in a project away."""
    from loopstack.auth import remove_member as remove
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    remove(local_stores().db, project, user, actor=settings().actor)
    console().print(f"removed {user} from project {project}", highlight=False)


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command("policy")
def policy(
    project: str = typer.Argument(..., help="The project's name."),
    protected_aliases: str = typer.Option(
        None,
        "--protected-aliases",
        help="Comma-separated aliases that move only through an approval ('' for none).",
    ),
    allow_self_approval: bool | None = typer.Option(
        None,
        "--self-approval/--no-self-approval",
        help="May a version's author approve its own request?",
    ),
    auto_approve: bool | None = typer.Option(
        None,
        "--auto-approve/--no-auto-approve",
        help="Approve at once when a request's evidence says the gates passed.",
    ),
    required_evidence: str = typer.Option(
        None,
        "--required-evidence",
        help="Comma-separated evidence keys every request must carry ('' for none).",
    ),
) -> None:
    """Show a project's approval policy; with options, change those fields and show it."""
    from loopstack.auth import get_policy, set_policy
    from loopstack.cli._output import console
    from loopstack.cli._stores import local_stores
    from loopstack.config import settings

    db = local_stores().db
    current = get_policy(db, project)
    changes: dict[str, Any] = {
        "protected_aliases": _names(protected_aliases),
        "allow_self_approval": allow_self_approval,
        "auto_approve_when_gates_pass": auto_approve,
        "required_evidence": _names(required_evidence),
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    out = console()
    if changes:
        current = set_policy(
            db, project, {**current.model_dump(), **changes}, actor=settings().actor
        )
        out.print(f"updated the approval policy of project {project}", highlight=False)
    _print_policy(out, current)
