"""Projects (tenants): members with roles, and each project's approval policy.

Project 0, ``default``, exists from the start and holds everything made before
projects did. Functions that take ``project`` accept its name (str) or id (int).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, Table, delete, select, update

from loopstack.auth._roles import Role, is_bootstrap
from loopstack.auth._users import user_row
from loopstack.config import Settings, settings
from loopstack.errors import AlreadyExists, Invalid, NotFound
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema import Project, ProjectMember, User

__all__ = [
    "PROJECT_NAME",
    "ApprovalPolicy",
    "Member",
    "ProjectInfo",
    "add_member",
    "create_project",
    "get_policy",
    "get_project",
    "list_projects",
    "members",
    "remove_member",
    "project_in_use",
    "project_refusal",
    "resolve_project",
    "set_policy",
]

_PROJECTS = cast(Table, Project.__table__)
_MEMBERS = cast(Table, ProjectMember.__table__)
_USERS = cast(Table, User.__table__)
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9\-_]{0,127}")
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,255}")


class ApprovalPolicy(BaseModel):
    """How a project's protected aliases move. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: aliases that move only through an approved request
    protected_aliases: list[str] = Field(default_factory=lambda: ["production"])
    #: may the author of a version approve its own request?
    allow_self_approval: bool = False
    #: approve a request at once when its evidence says the loop's gates passed
    auto_approve_when_gates_pass: bool = False
    #: evidence keys every approval request must carry (e.g. "eval_report")
    required_evidence: list[str] = Field(default_factory=list)

    @field_validator("protected_aliases", "required_evidence")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        seen: list[str] = []
        for item in value:
            if not _ALIAS.fullmatch(item):
                raise ValueError(
                    "each entry must be a name of letters, digits and '._-', "
                    f"starting with a letter or digit; got {item!r}"
                )
            if item not in seen:
                seen.append(item)
        return seen


@dataclass(frozen=True)
class ProjectInfo:
    project_id: int
    name: str
    description: str
    created_at: int
    policy: ApprovalPolicy


@dataclass(frozen=True)
class Member:
    user: str
    role: Role
    display_name: str = ""


def _policy_from_text(raw: str | None, project: str) -> ApprovalPolicy:
    try:
        return ApprovalPolicy.model_validate(json.loads(raw or "{}"))
    except (ValueError, ValidationError) as exc:
        raise Invalid(
            f"the stored policy of project {project!r} is unreadable ({exc}); set it "
            "again with `loopstack projects policy`",
            field="policy",
        ) from exc


def _info(row: Any) -> ProjectInfo:
    return ProjectInfo(
        row.project_id,
        row.name,
        row.description or "",
        row.created_at,
        _policy_from_text(row.policy, row.name),
    )


def project_row(conn: Connection, project: str | int) -> Any:
    """The project's row, by name (str) or id (int); NotFound naming it."""
    if isinstance(project, bool) or not isinstance(project, str | int):
        raise Invalid(f"a project is named by its name or id; got {project!r}", field="project")
    col = _PROJECTS.c.project_id if isinstance(project, int) else _PROJECTS.c.name
    row = conn.execute(select(_PROJECTS).where(col == project)).first()
    if row is None:
        what = f"id {project}" if isinstance(project, int) else f"name {project!r}"
        raise NotFound(f"no project with {what}")
    return row


def check_project_name(name: str) -> str:
    if not isinstance(name, str) or not PROJECT_NAME.fullmatch(name):
        raise Invalid(
            "a project name must be 1-128 lowercase letters, digits, '-' or '_', "
            f"starting with a letter or digit; got {name!r} instead",
            field="name",
        )
    return name


def create_project(db: Database, name: str, description: str = "", *, actor: str) -> ProjectInfo:
    """Create a project (with the default approval policy).

    >>> create_project(db, "fraud", "card fraud models", actor="root")  # doctest: +SKIP
    """
    check_project_name(name)
    if not isinstance(description, str):
        raise Invalid(f"a description must be text; got {description!r}", field="description")
    policy = ApprovalPolicy()

    def run(conn: Connection) -> ProjectInfo:
        if conn.execute(select(_PROJECTS.c.project_id).where(_PROJECTS.c.name == name)).first():
            raise AlreadyExists(f"a project named {name!r} already exists")
        now = int(time.time() * 1000)
        result = conn.execute(
            _PROJECTS.insert().values(
                name=name, description=description, policy=policy.model_dump_json(), created_at=now
            )
        )
        pid = cast(Any, result.inserted_primary_key)[0]
        return ProjectInfo(int(pid), name, description, now, policy)

    return db.write(
        run,
        actor=actor,
        action="project.create",
        object_type="project",
        object_id=name,
        payload={"name": name, "description": description},
        project_id=lambda info: info.project_id,
    )


def get_project(db: Database, project: str | int) -> ProjectInfo:
    """One project, by name or id; NotFound naming it."""
    return _info(db.read(lambda conn: project_row(conn, project)))


def resolve_project(
    db: Database, project: str | int | None, *, user: str | None = None, scope: int | None = None
) -> int:
    """The id of ``project`` (``None``: the default project, id 0).

    A name that does not exist, or that ``user`` holds no role in (or, with ``scope``, a
    token's one project, any other project), is refused alike (``NotFound``), naming the
    projects the caller can use.
    """
    if project is None:
        return 0
    visible = _usable(db, user, scope)
    for info in visible:
        if project in (info.name, info.project_id):
            return info.project_id
    raise _refusal(project, visible)


def project_refusal(
    db: Database, project: str | int, *, user: str | None = None, scope: int | None = None
) -> NotFound:
    """The ``NotFound`` for a project the caller cannot use (whether or not it exists),
    naming only the projects they can: what :func:`resolve_project` raises."""
    return _refusal(project, _usable(db, user, scope))


def _usable(db: Database, user: str | None, scope: int | None) -> list[ProjectInfo]:
    return [p for p in list_projects(db, user=user) if scope is None or p.project_id == scope]


def _refusal(project: str | int, visible: list[ProjectInfo]) -> NotFound:
    names = ", ".join(repr(p.name) for p in visible) or "none"
    return NotFound(
        f"no project named {project!r} that you can use; your projects: {names}", field="project"
    )


def project_in_use(
    db: Database, config: Settings | None = None, *, project: str | int | None = None
) -> int:
    """The id of the project local calls act in: ``project`` if given, else
    ``settings().project`` (``ls.set_project``, else ``LOOPSTACK_PROJECT``, else ``default``),
    checked by :func:`resolve_project` as the configured user (``LOOPSTACK_USER``) when
    ``LOOPSTACK_AUTH`` is on.

    >>> SqlRegistry(stores, project_id=project_in_use(stores.db))  # doctest: +SKIP
    """
    config = config or settings()
    chosen = config.project if project is None else project
    return resolve_project(db, chosen, user=config.actor if config.auth else None)


def list_projects(db: Database, *, user: str | None = None) -> list[ProjectInfo]:
    """Every project, by name; with ``user``, only those where the user holds a role (every
    one for a global admin, none for a disabled or unknown user)."""

    def run(conn: Connection) -> list[Any]:
        q = select(_PROJECTS).order_by(_PROJECTS.c.name)
        if user is None:
            return list(conn.execute(q).all())
        row = conn.execute(
            select(_USERS.c.is_admin, _USERS.c.disabled_at).where(_USERS.c.name == user)
        ).first()
        if row is None:
            return list(conn.execute(q).all()) if is_bootstrap(conn) else []
        if row.disabled_at is not None:
            return []
        if not row.is_admin:
            q = q.where(
                _PROJECTS.c.project_id.in_(
                    select(_MEMBERS.c.project_id).where(_MEMBERS.c.user == user)
                )
            )
        return list(conn.execute(q).all())

    return [_info(r) for r in db.read(run)]


def add_member(
    db: Database, project: str | int, user: str, role: Role | str, *, actor: str
) -> Member:
    """Give ``user`` ``role`` in ``project``; a member already there gets the new role."""
    parsed = Role.parse(role)
    name_holder: dict[str, str] = {}
    ids: dict[str, int] = {}

    def run(conn: Connection) -> Member:
        prow = project_row(conn, project)
        name_holder["project"] = prow.name
        ids["project"] = prow.project_id
        urow = user_row(conn, user)
        before = conn.execute(
            select(_MEMBERS.c.role).where(
                _MEMBERS.c.project_id == prow.project_id, _MEMBERS.c.user == user
            )
        ).scalar()
        if before is None:
            conn.execute(
                _MEMBERS.insert().values(project_id=prow.project_id, user=user, role=parsed.value)
            )
        else:
            conn.execute(
                update(_MEMBERS)
                .where(_MEMBERS.c.project_id == prow.project_id, _MEMBERS.c.user == user)
                .values(role=parsed.value)
            )
        return Member(user, parsed, urow.display_name or "")

    return db.write(
        run,
        actor=actor,
        action="project.add_member",
        object_type="project",
        object_id=lambda _: name_holder["project"],
        project_id=lambda _: ids["project"],
        payload={"project": project, "user": user, "role": parsed.value},
    )


def remove_member(db: Database, project: str | int, user: str, *, actor: str) -> None:
    """Take ``user``'s role in ``project`` away (their tokens scoped to it stop acting)."""
    name_holder: dict[str, str] = {}
    ids: dict[str, int] = {}

    def run(conn: Connection) -> None:
        prow = project_row(conn, project)
        name_holder["project"] = prow.name
        ids["project"] = prow.project_id
        done = conn.execute(
            delete(_MEMBERS).where(
                _MEMBERS.c.project_id == prow.project_id, _MEMBERS.c.user == user
            )
        ).rowcount
        if not done:
            raise NotFound(f"{user!r} is not a member of project {prow.name!r}")

    db.write(
        run,
        actor=actor,
        action="project.remove_member",
        object_type="project",
        object_id=lambda _: name_holder["project"],
        project_id=lambda _: ids["project"],
        payload={"project": project, "user": user},
    )


def members(db: Database, project: str | int) -> list[Member]:
    """The project's members and their roles, by user name."""

    def run(conn: Connection) -> list[Member]:
        prow = project_row(conn, project)
        rows = conn.execute(
            select(_MEMBERS.c.user, _MEMBERS.c.role, _USERS.c.display_name)
            .select_from(_MEMBERS.join(_USERS, _USERS.c.name == _MEMBERS.c.user))
            .where(_MEMBERS.c.project_id == prow.project_id)
            .order_by(_MEMBERS.c.user)
        ).all()
        return [Member(r.user, Role(r.role), r.display_name or "") for r in rows]

    return db.read(run)


def parse_policy(policy: ApprovalPolicy | dict[str, Any]) -> ApprovalPolicy:
    """Validate a policy; Invalid naming the first bad field."""
    if isinstance(policy, ApprovalPolicy):
        return policy
    if not isinstance(policy, dict):
        raise Invalid(f"a policy must be a mapping of fields; got {policy!r}", field="policy")
    try:
        return ApprovalPolicy.model_validate(policy)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "policy"
        top = str(err["loc"][0]) if err["loc"] else "policy"
        if err["type"] == "extra_forbidden":
            valid = ", ".join(ApprovalPolicy.model_fields)
            msg = f"the policy has no field {top!r}; its fields are {valid}"
        else:
            where = f" (at {loc})" if loc != top else ""
            why = str(err["msg"]).removeprefix("Value error, ")
            msg = f"the policy field {top!r} is invalid{where}: {why}; got {err['input']!r}"
        raise Invalid(msg, field=f"policy.{top}") from exc


def set_policy(
    db: Database, project: str | int, policy: ApprovalPolicy | dict[str, Any], *, actor: str
) -> ApprovalPolicy:
    """Replace a project's approval policy (fields left out take their defaults).

    >>> set_policy(db, "fraud", {"allow_self_approval": True}, actor="root")  # doctest: +SKIP
    """
    parsed = parse_policy(policy)
    name_holder: dict[str, str] = {}
    ids: dict[str, int] = {}

    def run(conn: Connection) -> ApprovalPolicy:
        prow = project_row(conn, project)
        name_holder["project"] = prow.name
        ids["project"] = prow.project_id
        conn.execute(
            update(_PROJECTS)
            .where(_PROJECTS.c.project_id == prow.project_id)
            .values(policy=parsed.model_dump_json())
        )
        return parsed

    return db.write(
        run,
        actor=actor,
        action="project.set_policy",
        object_type="project",
        object_id=lambda _: name_holder["project"],
        project_id=lambda _: ids["project"],
        payload={"project": project, "policy": parsed.model_dump()},
    )


def get_policy(db: Database, project: str | int) -> ApprovalPolicy:
    """The project's approval policy (the defaults if none was set)."""
    return get_project(db, project).policy
