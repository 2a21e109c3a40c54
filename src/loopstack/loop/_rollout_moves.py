"""A rollout's moves: the deployment revisions of its phases (shadow, each canary step,
promotion, rollback) and the rollout's row changed with each, in that order.

A mixin of ``Rollouts``. Both arms are pinned by version number while the rollout runs;
``production`` names the champion throughout. A promotion first moves ``production`` to
the candidate by the rollout's approved request (the registry's ``apply_request``: the
approval was the authority; a request applied already moves nothing twice), then leaves
the endpoint single on the candidate (by the champion's alias when that alias names it
now). A rollback leaves the endpoint single on the champion as it was; ``production``
is moved back to ``production_before`` only when this rollout's request moved it: a
rollout started before the rule (its request moved the alias at approval), or one whose
promotion moved the alias and then failed before it was recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopstack.loop._rollout_store import FINAL, Rollout, RolloutStore

if TYPE_CHECKING:
    from loopstack.serving import Arm, Deployment

__all__ = ["ALIAS", "RolloutEvent", "RolloutMoves", "ms"]

ALIAS = "production"


@dataclass(frozen=True)
class RolloutEvent:
    """What one tick (or override) did to one rollout: ``kind`` is ``started``,
    ``approved``, ``rejected``, ``shadow``, ``canary``, ``evaluated``, ``breach``,
    ``promoted``, ``rolled_back``, ``paused``, ``resumed`` or ``failed``."""

    rollout_id: int
    endpoint: str
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as plain values."""
        return {
            "rollout_id": self.rollout_id,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "detail": self.detail,
        }


def ms(now: float) -> int:
    """Epoch seconds as the milliseconds the table keeps."""
    return int(round(now * 1000))


class RolloutMoves:
    """The transitions of ``Rollouts`` (which provides the collaborators)."""

    store: RolloutStore
    _deployments: Any
    _registry: Any
    get: Any

    def _request_of(self, model_name: str, request_id: str | None) -> Any:
        """The rollout's approval request (``NotFound`` if it is gone)."""
        from loopstack.errors import NotFound

        if not request_id:
            raise NotFound("the rollout holds no approval request")
        try:
            return self._registry().get_request(request_id)
        except NotFound:
            raise NotFound(f"the rollout's approval request {request_id!r} is gone") from None

    def _apply_approval(self, rollout: Rollout) -> None:
        """Move ``production`` to the candidate by the rollout's approved request, if it
        holds one that waits for the promotion (none: the plan needed no approval, the
        request moved the alias at approval, or an admin forces past a pending one)."""
        request_id = rollout.watch.get("approval_request")
        if not request_id:
            return
        request = self._request_of(rollout.model_name, request_id)
        if request.apply_at == "promotion" and request.state == "approved":
            self._registry().apply_request(
                request_id, reason=f"rollout {rollout.rollout_id} promoted"
            )

    def _moved_production(self, rollout: Rollout) -> bool:
        """Whether this rollout's request moved ``production`` (before the rule, at its
        approval; under it, at a promotion that did not finish)."""
        request_id = rollout.watch.get("approval_request")
        if not request_id or "production_before" not in rollout.watch:
            return False
        from loopstack.errors import NotFound

        try:
            request = self._request_of(rollout.model_name, request_id)
        except NotFound:
            return False
        moved = "approved" if request.apply_at == "approval" else "applied"
        return bool(request.state == moved)

    def _candidate_arm(self, rollout: Rollout, weight: float, role: str) -> Arm:
        from loopstack.serving import Arm

        return Arm(role, rollout.model_name, rollout.version, weight, role)

    def _champion_arm(self, rollout: Rollout, weight: float) -> Arm:
        from loopstack.serving import Arm

        c = rollout.watch["champion"]
        pinned = str(rollout.watch["champion_version"])
        return Arm(c["name"], c["model"], pinned, weight, "primary")

    def _revise(
        self,
        rollout: Rollout,
        action: str,
        policy: str,
        arms: list[Arm],
        comment: str,
        **kw: Any,
    ) -> Deployment:
        store = self._deployments()
        current = store.get(rollout.endpoint)
        # SqlDeployments' revision path: the production rule and the audit, with the
        # champion pinned by number
        return store.revise(
            current, action, policy, arms, comment=f"rollout {rollout.rollout_id}: {comment}", **kw
        )

    def _begin(self, rollout: Rollout, now: float, why: str) -> RolloutEvent:
        if rollout.plan.shadow_s is not None:
            arms = [self._champion_arm(rollout, 100.0), self._candidate_arm(rollout, 0.0, "shadow")]
            self._revise(rollout, "shadow", "shadow", arms, "shadow")
            changed = self.store.change(
                rollout,
                "shadow",
                status="shadow",
                step_index=0,
                step_started_at=ms(now),
                payload={"because": why},
            )
            return RolloutEvent(changed.rollout_id, changed.endpoint, "shadow", {"because": why})
        return self._step(rollout, 0, now, why)

    def _step(self, rollout: Rollout, index: int, now: float, why: str) -> RolloutEvent:
        steps = rollout.plan.steps
        if index >= len(steps) or steps[index].weight >= 1.0:
            return self._promote(rollout, now, f"the last step baked ({why})")
        pct = steps[index].weight * 100
        arms = [
            self._champion_arm(rollout, 100.0 - pct),
            self._candidate_arm(rollout, pct, "canary"),
        ]
        self._revise(rollout, "canary", "canary", arms, f"canary {pct:g}%")
        watch = {**rollout.watch, "breaches": {}}
        detail = {"weight": steps[index].weight, "step": index, "because": why}
        changed = self.store.change(
            rollout,
            "canary",
            status="canary",
            step_index=index,
            step_started_at=ms(now),
            watch=watch,
            payload=detail,
        )
        return RolloutEvent(changed.rollout_id, changed.endpoint, "canary", detail)

    def _advance(self, rollout: Rollout, now: float) -> RolloutEvent:
        if rollout.status == "shadow":
            return self._step(rollout, 0, now, "the shadow phase baked")
        return self._step(rollout, rollout.step_index + 1, now, "the step baked")

    def _promote(
        self, rollout: Rollout, now: float, reason: str, *, force: bool = False
    ) -> RolloutEvent:
        from loopstack.serving import Arm

        c = rollout.watch["champion"]
        self._apply_approval(rollout)
        aliases = self._registry().get_registered_model(rollout.model_name).aliases
        ref = c["ref"] if aliases.get(c["ref"]) == int(rollout.version) else rollout.version
        arms = [Arm(c["name"], rollout.model_name, ref, 100.0, "primary")]
        self._revise(rollout, "promote", "single", arms, "promoted", force=force)
        detail = {"reason": reason, "production_alias": aliases.get(ALIAS)}
        changed = self.store.change(
            rollout, "promote", status="promoted", reason=reason, payload=detail
        )
        return RolloutEvent(changed.rollout_id, changed.endpoint, "promoted", detail)

    def _roll_back(
        self, rollout: Rollout, now: float, reason: str, *, watch: dict[str, Any] | None = None
    ) -> RolloutEvent:
        from loopstack.serving import Arm

        c = rollout.watch["champion"]
        before = rollout.watch.get("production_before")
        reg = self._registry()
        after = reg.get_registered_model(rollout.model_name).aliases.get(ALIAS)
        if after == int(rollout.version) and self._moved_production(rollout):
            after = before
            why = f"rollout {rollout.rollout_id} rolled back: {reason}"
            if before is None:
                reg.delete_alias(rollout.model_name, ALIAS, override=True)
            else:
                reg.set_alias(rollout.model_name, ALIAS, before, reason=why, override=True)
        arm = Arm(c["name"], c["model"], c["ref"], 100.0, "primary")
        self._revise(rollout, "rollback", "single", [arm], f"rolled back: {reason}")
        detail = {"reason": reason, "production_alias": after}
        if watch is not None:
            detail["last"] = watch.get("last")
        changed = self.store.change(
            rollout, "rollback", status="rolled_back", reason=reason, watch=watch, payload=detail
        )
        return RolloutEvent(changed.rollout_id, changed.endpoint, "rolled_back", detail)

    def _fail(self, rollout: Rollout, reason: str) -> RolloutEvent:
        current = self.get(rollout.rollout_id)
        if current.status in FINAL:
            return RolloutEvent(current.rollout_id, current.endpoint, current.status, {})
        if current.status in ("shadow", "canary"):  # traffic on the candidate: take it off
            return self._roll_back(current, time.time(), reason)
        changed = self.store.change(
            current, "fail", status="failed", reason=reason, payload={"reason": reason}
        )
        return RolloutEvent(changed.rollout_id, changed.endpoint, "failed", {"reason": reason})
