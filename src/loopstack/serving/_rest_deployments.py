"""Deployments through a loopstack server's native routes (/api/v1/deployments).

Same entities, method names and errors as ``SqlDeployments``: the server raises them,
``HttpClient`` brings them back. The server decides who may do what (RBAC, the
production rule and its admin override); the acting user is the token's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from loopstack.serving._deployments import ArmStats, Deployment, DeploymentRevision, DeploymentStore
from loopstack.store.remote import HttpClient

__all__ = ["RestDeployments"]


def _seg(text: Any) -> str:
    return quote(str(text), safe="")


class RestDeployments(DeploymentStore):
    """``DeploymentStore`` over a server's native REST API.

    >>> RestDeployments(HttpClient.shared("http://127.0.0.1:8080", token="ls_...")).get("churn")
    """

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self.client.call(method, f"/deployments{path}", **kw)

    def _change(self, name: str, verb: str, body: dict[str, Any]) -> Deployment:
        return Deployment.from_dict(self._call("POST", f"/{_seg(name)}/{verb}", json=body))

    def create(
        self, name: str, model: str, *, stage: str = "staging", force: bool = False
    ) -> Deployment:
        """A new endpoint answering with ``model`` alone."""
        body = {"name": name, "model": model, "stage": stage, "force": force}
        return Deployment.from_dict(self._call("POST", "", json=body))

    def get(self, name: str) -> Deployment:
        """The deployment's latest revision."""
        return Deployment.from_dict(self._call("GET", f"/{_seg(name)}"))

    def list_deployments(self) -> list[Deployment]:
        """Every deployment of the project, by name."""
        return [Deployment.from_dict(d) for d in self._call("GET", "")["deployments"]]

    def revisions(self) -> dict[str, int]:
        """Each deployment's current revision."""
        got = self._call("GET", "", params={"revisions_only": True})
        return {str(k): int(v) for k, v in got["revisions"].items()}

    def set(self, name: str, model: str, *, force: bool = False) -> Deployment:
        """Blue-green switch to ``model``."""
        return self._change(name, "set", {"model": model, "force": force})

    def canary(self, name: str, model: str, *, weight: float, force: bool = False) -> Deployment:
        """``weight`` percent to ``model``."""
        return self._change(name, "canary", {"model": model, "weight": weight, "force": force})

    def shadow(self, name: str, model: str, *, force: bool = False) -> Deployment:
        """Copies of the traffic to ``model``."""
        return self._change(name, "shadow", {"model": model, "force": force})

    def ab(
        self, name: str, arms: dict[str, tuple[str, float]], *, force: bool = False
    ) -> Deployment:
        """A weighted split over named arms."""
        body = {
            "arms": {n: {"model": m, "weight": w} for n, (m, w) in arms.items()},
            "force": force,
        }
        return self._change(name, "ab", body)

    def bandit(
        self,
        name: str,
        arms: dict[str, str],
        *,
        strategy: str = "thompson",
        epsilon: float = 0.1,
        force: bool = False,
    ) -> Deployment:
        """Arms chosen from their rewards."""
        body = {"arms": arms, "strategy": strategy, "epsilon": epsilon, "force": force}
        return self._change(name, "bandit", body)

    def promote(self, name: str, *, arm: str | None = None, force: bool = False) -> Deployment:
        """The challenger becomes the primary."""
        return self._change(name, "promote", {"arm": arm, "force": force})

    def rollback(self, name: str, *, to: int | None = None, force: bool = False) -> Deployment:
        """Restore an earlier revision."""
        return self._change(name, "rollback", {"to": to, "force": force})

    def set_enrichment(self, name: str, enrichment: dict[str, Any] | None) -> Deployment:
        """Set (or remove) the endpoint's feature enrichment."""
        return self._change(name, "enrichment", {"enrichment": enrichment})

    def configure(self, name: str, options: dict[str, Any], *, force: bool = False) -> Deployment:
        """Serving options as a new revision (``POST .../options``)."""
        return self._change(name, "options", {"options": options, "force": force})

    def history(self, name: str) -> list[DeploymentRevision]:
        """Every revision, oldest first."""
        got = self._call("GET", f"/{_seg(name)}/history")
        return [DeploymentRevision.from_dict(r) for r in got["revisions"]]

    def delete(self, name: str) -> None:
        """Remove the endpoint."""
        self._call("DELETE", f"/{_seg(name)}")

    def record_reward(self, name: str, arm: str, reward: float) -> ArmStats:
        """Feed a bandit arm a reward in [0, 1]."""
        got = self._call("POST", f"/{_seg(name)}/rewards", json={"arm": arm, "reward": reward})
        return ArmStats.from_dict(got)

    def bandit_state(self, name: str) -> dict[str, ArmStats]:
        """What each arm learned so far."""
        got = self._call("GET", f"/{_seg(name)}/bandit")
        return {a: ArmStats.from_dict(s) for a, s in got["arms"].items()}
