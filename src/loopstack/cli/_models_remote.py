"""The registry through a loopstack server's native routes (/api/v1/models, /api/v1/approvals).

``RemoteRegistry`` answers with the same entities and method names as ``SqlRegistry``, so
every `loopstack models` command reads the same whichever of the two it was handed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from loopstack.registry import (
    AliasMove,
    ApprovalRequest,
    LineageGraph,
    ModelVersion,
    RegisteredModel,
)

__all__ = ["RemoteRegistry"]

_PROJECT_HEADER = "X-Loopstack-Project"


def _seg(text: Any) -> str:
    # model names may hold spaces and dots; a '/' must not become a path separator
    return quote(str(text), safe="")


class RemoteRegistry:
    """The subset of ``SqlRegistry`` the CLI uses, over HTTP with a bearer token."""

    def __init__(self, base: str, *, token: str | None, project: str | None) -> None:
        self.base = base.rstrip("/")
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if project:
            self.headers[_PROJECT_HEADER] = project

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """``method /api/v1<path>``; an HTTP error comes back as the loopstack error it names."""
        import httpx

        from loopstack import errors

        url = f"{self.base}/api/v1{path}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = httpx.request(
                method, url, params=query, json=body, headers=self.headers, timeout=60
            )
        except httpx.TransportError as exc:
            raise errors.StoreUnavailable(
                f"cannot reach the loopstack server at {self.base}: {exc}"
            ) from exc
        if resp.status_code >= 400:
            try:
                payload = resp.json()
            except ValueError:
                payload = {}
            if not isinstance(payload, dict):
                payload = {}
            cls = getattr(errors, str(payload.get("error", "")), None)
            if not (isinstance(cls, type) and issubclass(cls, errors.LoopstackError)):
                cls = errors.LoopstackError
            raise cls(payload.get("message") or f"{method} {url} answered HTTP {resp.status_code}")
        return resp.json()

    # -- models and versions ----------------------------------------------------------
    def search_registered_models(self, *, name_like: str | None = None) -> list[RegisteredModel]:
        got = self._call("GET", "/models", params={"name_like": name_like})
        return [RegisteredModel(**m) for m in got["models"]]

    def get_registered_model(self, name: str) -> RegisteredModel:
        return RegisteredModel(**self._call("GET", f"/models/{_seg(name)}"))

    def search_model_versions(self, *, name: str) -> list[ModelVersion]:
        got = self._call("GET", f"/models/{_seg(name)}/versions")
        return [ModelVersion(**v) for v in got["versions"]]

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        return ModelVersion(**self._call("GET", f"/models/{_seg(name)}/versions/{_seg(version)}"))

    # -- aliases ----------------------------------------------------------------------
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
        from loopstack.errors import Invalid

        try:
            number = int(version)
        except (TypeError, ValueError):
            raise Invalid(
                f"a model version must be an integer; got {version!r} instead", field="version"
            ) from None
        got = self._call(
            "PUT",
            f"/models/{_seg(name)}/aliases/{_seg(alias)}",
            body={"version": number, "force": force, "reason": reason, "override": override},
        )
        return AliasMove(**got)

    def delete_alias(self, name: str, alias: str, *, override: bool = False) -> AliasMove:
        if override:
            from loopstack.errors import Invalid

            raise Invalid(
                "the server's DELETE /api/v1/models/{name}/aliases/{alias} takes no "
                "override: remove a protected alias with a local metadata store",
                field="override",
            )
        return AliasMove(**self._call("DELETE", f"/models/{_seg(name)}/aliases/{_seg(alias)}"))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        got = self._call("GET", f"/models/{_seg(name)}/alias-history", params={"alias": alias})
        return [AliasMove(**m) for m in got["moves"]]

    # -- approvals --------------------------------------------------------------------
    def request_promotion(
        self,
        name: str,
        version: int | str,
        *,
        alias: str = "production",
        evidence: dict[str, Any] | None = None,
    ) -> ApprovalRequest:
        from loopstack.errors import Invalid

        try:
            number = int(version)
        except (TypeError, ValueError):
            raise Invalid(
                f"a model version must be an integer; got {version!r} instead", field="version"
            ) from None
        got = self._call(
            "POST",
            f"/models/{_seg(name)}/promotions",
            body={"version": number, "alias": alias, "evidence": evidence or {}},
        )
        return ApprovalRequest(**got)

    def decide(
        self, request_id: str, *, approve: bool, comment: str = "", force: bool = False
    ) -> ApprovalRequest:
        verb = "approve" if approve else "reject"
        body: dict[str, Any] = {"comment": comment}
        if approve:
            body["force"] = force
        got = self._call("POST", f"/approvals/{_seg(request_id)}/{verb}", body=body)
        return ApprovalRequest(**got)

    def list_requests(
        self, *, name: str | None = None, state: str | None = None
    ) -> list[ApprovalRequest]:
        got = self._call("GET", "/approvals", params={"name": name, "state": state})
        return [ApprovalRequest(**r) for r in got["requests"]]

    # -- lineage ----------------------------------------------------------------------
    def lineage(self, node: str) -> LineageGraph:
        """The lineage of a ``model_version:<name>/<n>`` node (the only kind the server
        serves)."""
        from loopstack.errors import Invalid

        kind, _, ident = node.partition(":")
        name, _, version = ident.rpartition("/")
        if kind != "model_version" or not name or not version:
            raise Invalid(
                f"through a server, lineage starts from a model version "
                f"('model_version:<name>/<n>' or `models lineage NAME VERSION`); "
                f"got {node!r}: the server has no lineage route for other nodes",
                field="node",
            )
        got = self._call("GET", f"/models/{_seg(name)}/versions/{_seg(version)}/lineage")
        return LineageGraph(
            got["root"],
            list(got["upstream"]),
            list(got["downstream"]),
            [(str(a), str(b), str(c)) for a, b, c in got["edges"]],
            dict(got["labels"]),
        )
