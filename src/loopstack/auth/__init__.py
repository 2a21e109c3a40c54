"""Authentication and authorisation: users, projects and roles, API tokens, secrets.

Who may do what is decided here and enforced by the server; every change goes
through ``Database.write`` and so lands in the audit log with the change.
"""

from loopstack.auth._access import ProjectAccess
from loopstack.auth._projects import (
    ApprovalPolicy,
    Member,
    ProjectInfo,
    add_member,
    create_project,
    get_policy,
    get_project,
    list_projects,
    members,
    project_in_use,
    project_refusal,
    remove_member,
    resolve_project,
    set_policy,
)
from loopstack.auth._roles import (
    MINIMUM_ROLE,
    Permission,
    Role,
    check,
    require,
    require_admin,
    role_in,
    role_of,
)
from loopstack.auth._secrets import (
    REDACTED,
    is_secret_ref,
    looks_like_secret_key,
    redact,
    redact_mapping,
    resolve_secret_ref,
)
from loopstack.auth._tokens import (
    Principal,
    TokenInfo,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)
from loopstack.auth._users import (
    UserInfo,
    create_user,
    disable_user,
    enable_user,
    get_user,
    list_users,
)

__all__ = [
    "ApprovalPolicy",
    "MINIMUM_ROLE",
    "Member",
    "Permission",
    "Principal",
    "ProjectAccess",
    "ProjectInfo",
    "REDACTED",
    "Role",
    "TokenInfo",
    "UserInfo",
    "add_member",
    "check",
    "create_project",
    "create_token",
    "create_user",
    "disable_user",
    "enable_user",
    "get_policy",
    "get_project",
    "get_user",
    "is_secret_ref",
    "list_projects",
    "list_tokens",
    "list_users",
    "looks_like_secret_key",
    "members",
    "project_in_use",
    "project_refusal",
    "redact",
    "redact_mapping",
    "remove_member",
    "require",
    "require_admin",
    "resolve_project",
    "resolve_secret_ref",
    "revoke_token",
    "role_in",
    "role_of",
    "set_policy",
    "verify_token",
]
