"""Open the project's rollouts where the configuration says: through a server's
``/api/v1/rollouts`` for an http(s) tracking URI, else the metadata store directly.
Same methods, entities and errors either way (the server decides who may do what)."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from loopstack.loop._rollout import RolloutEvent
from loopstack.loop._rollout_plan import RolloutPlan
from loopstack.loop._rollout_store import Rollout

if TYPE_CHECKING:
    from loopstack.loop._rollout import Rollouts
    from loopstack.store.remote import HttpClient

__all__ = ["RestRollouts", "rollouts"]


class RestRollouts:
    """``Rollouts`` through a loopstack server; the acting user is the token's."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def _call(self, method: str, path: str = "", **kw: Any) -> Any:
        return self.client.call(method, f"/rollouts{path}", **kw)

    def get(self, rollout_id: int) -> Rollout:
        """The rollout ``rollout_id``."""
        return Rollout.from_dict(self._call("GET", f"/{int(rollout_id)}"))

    def list(self, endpoint: str | None = None, *, active: bool = False) -> list[Rollout]:
        """The project's rollouts, newest first."""
        params: dict[str, Any] = {"active": active}
        if endpoint is not None:
            params["endpoint"] = endpoint
        return [Rollout.from_dict(r) for r in self._call("GET", params=params)["rollouts"]]

    def start(
        self,
        endpoint: str,
        model_name: str,
        version: int | str,
        plan: RolloutPlan | dict[str, Any],
        *,
        evidence: dict[str, Any] | None = None,
        force: bool = False,
        reason: str = "",
    ) -> Rollout:
        """Start a rollout (checked by the server; ``force`` past its gates is an
        admin's, with a ``reason``)."""
        body = {
            "endpoint": endpoint,
            "model": model_name,
            "version": int(version),
            "plan": plan.to_dict() if isinstance(plan, RolloutPlan) else plan,
            "evidence": evidence,
            "force": force,
            "reason": reason,
        }
        return Rollout.from_dict(self._call("POST", json=body))

    def tick(self, now: float | None = None) -> builtins.list[RolloutEvent]:
        """One step of every rollout under way, on the server (at its own clock)."""
        return [RolloutEvent(**e) for e in self._call("POST", "/tick")["events"]]

    def events(self, rollout_id: int) -> builtins.list[dict[str, Any]]:
        """The rollout's audit trail, oldest first."""
        return list(self._call("GET", f"/{int(rollout_id)}/events")["events"])

    def _verb(self, rollout_id: int, verb: str, body: dict[str, Any] | None = None) -> Rollout:
        return Rollout.from_dict(self._call("POST", f"/{int(rollout_id)}/{verb}", json=body or {}))

    def approve(self, rollout_id: int, *, comment: str = "") -> Rollout:
        """Approve the rollout's registry request as the token's user."""
        return self._verb(rollout_id, "approve", {"comment": comment})

    def pause(self, rollout_id: int) -> Rollout:
        """Hold the rollout where it is."""
        return self._verb(rollout_id, "pause")

    def resume(self, rollout_id: int) -> Rollout:
        """Go on from where it was paused."""
        return self._verb(rollout_id, "resume")

    def force_promote(self, rollout_id: int) -> Rollout:
        """Promote now."""
        return self._verb(rollout_id, "promote")

    def force_rollback(self, rollout_id: int) -> Rollout:
        """Roll back now."""
        return self._verb(rollout_id, "rollback")


def rollouts(
    *, actor: str | None = None, project: str | int | None = None
) -> Rollouts | RestRollouts:
    """The project's rollouts: through the server for an http(s) tracking URI, else the
    metadata store directly.

    >>> r = ls.loop.rollouts()                                   # doctest: +SKIP
    >>> r.start("churn-api", "churn", 4, plan); r.tick()        # doctest: +SKIP
    """
    from loopstack.auth._open import open_in_project

    def remote(client: HttpClient) -> Rollouts | RestRollouts:
        return RestRollouts(client)

    def local(stores: Any, who: str, pid: int) -> Rollouts | RestRollouts:
        from loopstack.loop._rollout import Rollouts

        return Rollouts(stores, actor=who, project_id=pid)

    return open_in_project(remote, local, actor=actor, project=project)
