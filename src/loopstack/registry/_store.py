"""The registry store interfaces; implementations: SQL (direct) and REST (through a server).

Two small interfaces, one idea each: ``ModelStore`` keeps registered models, their
versions, aliases and lineage; ``ApprovalStore`` opens and decides the requests
that move protected aliases. ``RegistryStore`` is both, the type ``ls.get_registry()``
answers whichever backend the configuration names.
"""

from __future__ import annotations

import abc
from typing import Any

from loopstack.registry._entities import AliasMove, ApprovalRequest, ModelVersion, RegisteredModel
from loopstack.registry._lineage import LineageGraph

__all__ = ["ApprovalStore", "ModelStore", "RegistryStore"]


class ModelStore(abc.ABC):
    """Registered models, versions, aliases (with their history) and lineage."""

    # -- registered models ----------------------------------------------------------
    @abc.abstractmethod
    def create_registered_model(
        self, name: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> RegisteredModel:
        """A new, empty registered model; ``AlreadyExists`` if the name is taken."""

    @abc.abstractmethod
    def get_registered_model(self, name: str) -> RegisteredModel:
        """The model with its tags, aliases and latest version; ``NotFound`` otherwise."""

    @abc.abstractmethod
    def search_registered_models(
        self, *, name_like: str | None = None, max_results: int = 1000
    ) -> list[RegisteredModel]:
        """Models by name (SQL ``LIKE`` pattern), sorted by name."""

    @abc.abstractmethod
    def update_registered_model(
        self, name: str, *, description: str | None = None, new_name: str | None = None
    ) -> RegisteredModel:
        """Change a model's description, or rename it."""

    @abc.abstractmethod
    def delete_registered_model(self, name: str) -> None:
        """Delete a model with all its versions, aliases, tags and requests; ``Conflict``
        while a deployment has an arm on it."""

    @abc.abstractmethod
    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        """Set (or overwrite) one tag of a model."""

    @abc.abstractmethod
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Remove one tag of a model; ``NotFound`` if it has no such tag."""

    # -- versions -------------------------------------------------------------------
    @abc.abstractmethod
    def create_model_version(
        self,
        name: str,
        *,
        source: str,
        files: dict[str, str],
        flavor: str = "unknown",
        signature: dict[str, Any] | None = None,
        requirements: list[str] | None = None,
        run_id: str | None = None,
        code_version: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        onnx_max_abs_diff: float | None = None,
        parents: list[tuple[str, int]] | None = None,
        create_model: bool = True,
    ) -> ModelVersion:
        """Register the next version of ``name`` with the sha256 of every package file."""

    @abc.abstractmethod
    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        """One version; ``Invalid`` for a non-integer version, ``NotFound`` for a missing one."""

    @abc.abstractmethod
    def get_verified_model_version(self, name: str, version: int | str) -> ModelVersion:
        """One version, after checking its package record (files' digests, source, run)
        against the keyed audit event of its registration; ``Tampered`` if they differ."""

    @abc.abstractmethod
    def search_model_versions(
        self, *, name: str | None = None, run_id: str | None = None, max_results: int = 1000
    ) -> list[ModelVersion]:
        """Versions of one model, or logged from one run; newest first per model."""

    @abc.abstractmethod
    def update_model_version(
        self, name: str, version: int | str, *, description: str | None = None
    ) -> ModelVersion:
        """Change a version's description."""

    @abc.abstractmethod
    def set_model_version_tag(self, name: str, version: int | str, key: str, value: str) -> None:
        """Set (or overwrite) one tag of a version."""

    @abc.abstractmethod
    def delete_model_version_tag(self, name: str, version: int | str, key: str) -> None:
        """Remove one tag of a version; ``NotFound`` if it has no such tag."""

    # -- aliases --------------------------------------------------------------------
    @abc.abstractmethod
    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version ``alias`` points at (``latest``: the newest version)."""

    @abc.abstractmethod
    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str,
        *,
        force: bool = False,
        reason: str = "",
        override: bool = False,
    ) -> AliasMove:
        """Point ``alias`` at ``version``; a protected alias needs an approved request
        (``Forbidden``), a signature that breaks callers needs ``force`` (``Conflict``)."""

    @abc.abstractmethod
    def delete_alias(self, name: str, alias: str, *, override: bool = False) -> AliasMove:
        """Remove ``alias``; a protected one only with an admin ``override``."""

    @abc.abstractmethod
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of the model's aliases (or of one), oldest first."""

    # -- lineage --------------------------------------------------------------------
    @abc.abstractmethod
    def lineage(self, obj: Any) -> LineageGraph:
        """Upstream and downstream of a run, dataset or model version (or a ``type:id``)."""


class ApprovalStore(abc.ABC):
    """Approval requests: how a protected alias moves (evidence, four eyes, policy)."""

    @abc.abstractmethod
    def request_promotion(
        self,
        name: str,
        version: int | str,
        *,
        alias: str = "production",
        evidence: dict[str, Any] | None = None,
    ) -> ApprovalRequest:
        """Open a request to move ``alias`` to ``version``, carrying its evidence."""

    @abc.abstractmethod
    def decide(
        self, request_id: str, *, approve: bool, comment: str = "", force: bool = False
    ) -> ApprovalRequest:
        """Approve (the alias moves at once; a rollout's request only authorises its
        rollout, which moves the alias when it promotes) or reject a pending request; not
        one's own."""

    def approve(self, request_id: str, comment: str = "") -> ApprovalRequest:
        """Approve a pending request: its alias moves to its version at once (a rollout's
        request: when the rollout promotes).

        >>> reg.approve(request.request_id, comment="AUC up 2 points, data gates green")
        """
        return self.decide(request_id, approve=True, comment=comment)

    def reject(self, request_id: str, comment: str = "") -> ApprovalRequest:
        """Reject a pending request, saying why; the alias stays where it is."""
        return self.decide(request_id, approve=False, comment=comment)

    @abc.abstractmethod
    def list_requests(
        self, *, name: str | None = None, state: str | None = None
    ) -> list[ApprovalRequest]:
        """Requests, oldest first, of one model and/or in one state."""


class RegistryStore(ModelStore, ApprovalStore):
    """The whole registry: models, versions, aliases, lineage and approvals."""
