"""The registry through a loopstack server's native routes (/api/v1/models, /approvals, /lineage).

Same entities, same method names and the same error classes as ``SqlRegistry``: the
server raises them, ``HttpClient`` brings them back. Who may call what is the
server's to decide (RBAC); the acting user is the token's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from loopstack.errors import Invalid
from loopstack.registry._entities import AliasMove, ApprovalRequest, ModelVersion, RegisteredModel
from loopstack.registry._lineage import LineageGraph, node_id
from loopstack.registry._store import RegistryStore
from loopstack.store.remote import HttpClient

__all__ = ["RestRegistry"]


def _seg(text: Any) -> str:
    # model names may hold spaces and dots; a '/' must not become a path separator
    return quote(str(text), safe="")


def _number(version: int | str) -> int:
    try:
        return int(version)
    except (TypeError, ValueError):
        raise Invalid(
            f"a model version must be an integer; got {version!r} instead", field="version"
        ) from None


def _graph(got: dict[str, Any]) -> LineageGraph:
    return LineageGraph(
        str(got["root"]),
        list(got["upstream"]),
        list(got["downstream"]),
        [(str(a), str(b), str(c)) for a, b, c in got["edges"]],
        dict(got["labels"]),
    )


class RestRegistry(RegistryStore):
    """``RegistryStore`` over a server's native REST API.

    >>> reg = RestRegistry(HttpClient.shared("http://127.0.0.1:8080", token="ls_..."))
    >>> reg.get_version_by_alias("churn", "production").version
    """

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self.client.call(method, path, **kw)

    def _model_path(self, name: str) -> str:
        return f"/models/{_seg(name)}"

    def _version_path(self, name: str, version: int | str) -> str:
        return f"/models/{_seg(name)}/versions/{_number(version)}"

    # -- registered models ----------------------------------------------------------
    def create_registered_model(
        self, name: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": tags or {}}
        return RegisteredModel(**self._call("POST", "/models", json=body))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return RegisteredModel(**self._call("GET", self._model_path(name)))

    def search_registered_models(
        self, *, name_like: str | None = None, max_results: int = 1000
    ) -> list[RegisteredModel]:
        params = {"name_like": name_like, "max_results": max_results}
        got = self._call("GET", "/models", params=params)
        return [RegisteredModel(**m) for m in got["models"]]

    def update_registered_model(
        self, name: str, *, description: str | None = None, new_name: str | None = None
    ) -> RegisteredModel:
        body = {"description": description, "new_name": new_name}
        return RegisteredModel(**self._call("PATCH", self._model_path(name), json=body))

    def delete_registered_model(self, name: str) -> None:
        self._call("DELETE", self._model_path(name))

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._call("PUT", f"{self._model_path(name)}/tags/{_seg(key)}", json={"value": value})

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._call("DELETE", f"{self._model_path(name)}/tags/{_seg(key)}")

    # -- versions -------------------------------------------------------------------
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
        if not isinstance(files, dict):
            raise Invalid(
                f"files must map paths to sha256 digests; got {type(files).__name__}", field="files"
            )
        body = {
            "source": source,
            "files": files,
            "flavor": flavor,
            "signature": signature or {},
            "requirements": requirements or [],
            "run_id": run_id,
            "code_version": code_version,
            "description": description,
            "tags": tags or {},
            "onnx_max_abs_diff": onnx_max_abs_diff,
            "parents": [[p, _number(v)] for p, v in parents or []],
            "create_model": create_model,
        }
        got = self._call("POST", f"{self._model_path(name)}/versions", json=body)
        return ModelVersion(**got)

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        return ModelVersion(**self._call("GET", self._version_path(name, version)))

    def get_verified_model_version(self, name: str, version: int | str) -> ModelVersion:
        got = self._call("GET", self._version_path(name, version), params={"verified": True})
        return ModelVersion(**got)

    def search_model_versions(
        self, *, name: str | None = None, run_id: str | None = None, max_results: int = 1000
    ) -> list[ModelVersion]:
        params = {"name": name, "run_id": run_id, "max_results": max_results}
        got = self._call("GET", "/model-versions", params=params)
        return [ModelVersion(**v) for v in got["versions"]]

    def update_model_version(
        self, name: str, version: int | str, *, description: str | None = None
    ) -> ModelVersion:
        body = {"description": description}
        return ModelVersion(**self._call("PATCH", self._version_path(name, version), json=body))

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: str) -> None:
        path = f"{self._version_path(name, version)}/tags/{_seg(key)}"
        self._call("PUT", path, json={"value": value})

    def delete_model_version_tag(self, name: str, version: int | str, key: str) -> None:
        self._call("DELETE", f"{self._version_path(name, version)}/tags/{_seg(key)}")

    # -- aliases --------------------------------------------------------------------
    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return ModelVersion(**self._call("GET", f"{self._model_path(name)}/aliases/{_seg(alias)}"))

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
        body = {"version": _number(version), "force": force, "reason": reason, "override": override}
        got = self._call("PUT", f"{self._model_path(name)}/aliases/{_seg(alias)}", json=body)
        return AliasMove(**got)

    def delete_alias(self, name: str, alias: str, *, override: bool = False) -> AliasMove:
        path = f"{self._model_path(name)}/aliases/{_seg(alias)}"
        return AliasMove(**self._call("DELETE", path, params={"override": override or None}))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        got = self._call("GET", f"{self._model_path(name)}/alias-history", params={"alias": alias})
        return [AliasMove(**m) for m in got["moves"]]

    # -- lineage --------------------------------------------------------------------
    def lineage(self, obj: Any) -> LineageGraph:
        return _graph(self._call("GET", "/lineage", params={"node": node_id(obj)}))

    # -- approvals ------------------------------------------------------------------
    def request_promotion(
        self,
        name: str,
        version: int | str,
        *,
        alias: str = "production",
        evidence: dict[str, Any] | None = None,
    ) -> ApprovalRequest:
        body = {"version": _number(version), "alias": alias, "evidence": evidence or {}}
        got = self._call("POST", f"{self._model_path(name)}/promotions", json=body)
        return ApprovalRequest(**got)

    def decide(
        self, request_id: str, *, approve: bool, comment: str = "", force: bool = False
    ) -> ApprovalRequest:
        verb = "approve" if approve else "reject"
        body: dict[str, Any] = {"comment": comment}
        if approve:
            body["force"] = force
        got = self._call("POST", f"/approvals/{_seg(request_id)}/{verb}", json=body)
        return ApprovalRequest(**got)

    def list_requests(
        self, *, name: str | None = None, state: str | None = None
    ) -> list[ApprovalRequest]:
        got = self._call("GET", "/approvals", params={"name": name, "state": state})
        return [ApprovalRequest(**r) for r in got["requests"]]
