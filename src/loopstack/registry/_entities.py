"""The registry's vocabulary: registered models, versions, aliases, approval requests."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from loopstack.errors import Invalid

__all__ = [
    "AliasMove",
    "ApprovalRequest",
    "ModelVersion",
    "RegisteredModel",
    "validate_alias",
    "validate_model_name",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-. ]{0,255}$")
_ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,127}$")


def validate_model_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise Invalid(
            "a model name must start with a letter or digit and contain only letters, "
            f"digits, '_', '-', '.' and spaces (at most 256); got {name!r} instead",
            field="name",
        )
    return name


def validate_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise Invalid(
            "an alias must start with a letter and contain only letters, digits, '_' "
            f"and '-' (at most 128); got {alias!r} instead",
            field="alias",
        )
    if alias.lower() == "latest" or re.fullmatch(r"v\d+", alias):
        raise Invalid(
            f"{alias!r} is reserved (it would shadow 'latest' or a version number)", field="alias"
        )
    return alias


@dataclass
class RegisteredModel:
    name: str
    description: str
    created_by: str
    created_at: int
    updated_at: int
    project_id: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelVersion:
    name: str
    version: int
    flavor: str
    source: str
    files: dict[str, str]
    digest: str
    signature: dict[str, Any]
    requirements: list[str]
    run_id: str | None
    code_version: str | None
    description: str
    status: str
    approval_state: str
    onnx_max_abs_diff: float | None
    created_by: str
    created_at: int
    updated_at: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AliasMove:
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    ts: int
    reason: str
    approval_id: str | None


@dataclass
class ApprovalRequest:
    request_id: str
    name: str
    version: int
    alias: str
    state: str  # pending | approved | applied | rejected | cancelled
    requested_by: str
    requested_at: int
    evidence: dict[str, Any]
    decided_by: str | None = None
    decided_at: int | None = None
    comment: str = ""
    #: "approval": the alias moves when the request is approved (a direct request);
    #: "promotion": a rollout's, the approval authorises the rollout and the alias moves
    #: when it promotes (``apply_request``: approved -> applied), never if it rolls back
    apply_at: str = "approval"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
