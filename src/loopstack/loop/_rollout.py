"""Rollouts: a gated version's way to the whole traffic of an endpoint, watched and
rolled back on its own.

``start`` opens (or adopts) the registry's approval request to move ``production`` to
the version, as a rollout's request (``apply_at="promotion"``); once it is approved (a
human through the CLI or API, or the project's policy), ``tick`` revises the endpoint's
deployment: a shadow phase, then the canary steps, each for its bake time. Every
``interval_s`` it measures the candidate over the last ``window_s`` (``_guardrails``);
a guardrail breached ``breaches_to_rollback`` times in a row rolls back in that same
tick (the deployment back to the champion alone); a step baked with no breach advances;
after the last step the version is promoted (the deployment single on it).

The approval authorises the rollout; it does not move ``production``. While the
candidate is shadowed or canaried, ``models:/<name>@production`` (batch scoring, other
endpoints, the gates' champion) still resolves to the champion; the rollout moves the
alias when it promotes (the registry's ``apply_request``), and a rollback leaves it
where it always was. A direct request (``loopstack models promote``) still moves its
alias at approval. A rollout started before this rule, whose request moved
``production`` at approval, is rolled back with the alias moved back to
``production_before``.

Overrides (``pause``, ``resume``, ``force_promote``, ``force_rollback``) need an
ml-engineer or an admin: a server passes the caller's ``role``; a local store trusts
its caller, as the registry does. Every transition is one audited write.
"""

from __future__ import annotations

import builtins
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from loopstack.errors import (
    Conflict,
    Forbidden,
    Invalid,
    LoopstackError,
    Overloaded,
    StoreUnavailable,
)
from loopstack.loop._guardrails import measure_candidate
from loopstack.loop._rollout_moves import ALIAS, RolloutEvent, RolloutMoves, ms
from loopstack.loop._rollout_plan import RolloutPlan
from loopstack.loop._rollout_store import ACTIVE, FINAL, UNDER_WAY, Rollout, RolloutStore

if TYPE_CHECKING:
    from loopstack.auth import Role
    from loopstack.store import Stores

__all__ = ["RolloutEvent", "Rollouts"]

log = logging.getLogger("loopstack.loop")

#: how long a tick may hold the project's rollouts before another ticker may take over
LEASE_TTL_S = 120.0


class Rollouts(RolloutMoves):
    """The rollouts of one project, acting as ``actor`` (with ``role``, when a server
    says who calls; None: a local caller, trusted)."""

    def __init__(
        self,
        stores: Stores,
        *,
        project_id: int = 0,
        actor: str = "loop",
        role: Role | None = None,
    ) -> None:
        self.stores = stores
        self.project_id = project_id
        self.actor = actor
        self.role = role
        self.store = RolloutStore(stores.db, project_id=project_id, actor=actor)
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    # -- collaborators ------------------------------------------------------------------
    def _deployments(self) -> Any:
        from loopstack.serving import SqlDeployments

        return SqlDeployments(self.stores, actor=self.actor, project_id=self.project_id)

    def _registry(self) -> Any:
        from loopstack.registry import SqlRegistry

        return SqlRegistry(self.stores, actor=self.actor, project_id=self.project_id)

    def _require_engineer(self, verb: str) -> None:
        from loopstack.auth import Role

        if self.role is not None and self.role < Role.ML_ENGINEER:
            raise Forbidden(
                f"{verb} of a rollout needs the 'ml-engineer' or 'admin' role in this "
                f"project; {self.actor!r} holds {self.role.value!r}"
            )

    # -- reading ------------------------------------------------------------------------
    def get(self, rollout_id: int) -> Rollout:
        """The rollout ``rollout_id``; ``NotFound`` if there is none."""
        return self.store.get(rollout_id)

    def list(self, endpoint: str | None = None, *, active: bool = False) -> builtins.list[Rollout]:
        """The project's rollouts (of ``endpoint``; only those under way with ``active``),
        newest first."""
        return self.store.list(endpoint=endpoint, statuses=UNDER_WAY if active else None)

    def events(self, rollout_id: int) -> builtins.list[dict[str, Any]]:
        """The rollout's audit trail (every transition, who made it, what it saw), oldest
        first."""
        from loopstack.store.audit_log import LocalAuditLog

        self.get(rollout_id)
        log = LocalAuditLog(self.stores.db, project_id=self.project_id)
        return log.events(object_type="rollout", object_id=str(rollout_id))

    # -- starting -----------------------------------------------------------------------
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
        """Start rolling ``model_name`` ``version`` out on ``endpoint`` by ``plan``.

        The version's recorded gates (``record_gates``) must all have passed: else
        ``GateFailed`` naming each failed gate (or saying none were recorded), and
        nothing changes; ``force=True`` (an admin's, with a ``reason``; audited) starts
        it anyway. The rollout keeps the gate evaluation it started on in ``watch``
        (``gates``). The endpoint's primary is the champion. Without approval needed
        (the plan says so, or the version is approved already, or the project's policy
        approves the request at once) the first phase begins now; else the rollout
        awaits the registry's request, which ``start`` opens with ``evidence`` (or
        adopts: a pending request for the same move becomes the rollout's). Either way
        ``production`` moves only when the rollout promotes (when it holds an approved
        request: a version approved by an earlier rollout's request reuses it).

        >>> Rollouts(stores, actor="alice").start("churn-api", "churn", 4, plan)  # doctest: +SKIP
        """
        if self.role is not None:
            self._require_engineer("starting")
        plan = plan if isinstance(plan, RolloutPlan) else RolloutPlan.from_dict(plan)
        reg = self._registry()
        candidate = reg.get_model_version(model_name, int(version))
        deployment = self._deployments().get(endpoint)
        champion = deployment.primary
        if champion is None or deployment.policy not in ("single", "blue-green"):
            raise Conflict(
                f"deployment {endpoint!r} must answer with one primary (policy single or "
                f"blue-green) before a rollout; its policy is {deployment.policy!r}"
            )
        if champion.model != model_name or champion.version == candidate.version:
            raise Invalid(
                f"a rollout replaces the champion {champion.model}/{champion.version} of "
                f"{endpoint!r} with another version of the same model; got "
                f"{model_name}/{candidate.version}",
                field="version",
            )
        gates = self._gate_evidence(model_name, candidate.version, force=force, reason=reason)
        watch: dict[str, Any] = {
            "champion": champion.to_dict(),
            "champion_version": champion.version,
            "production_before": reg.get_registered_model(model_name).aliases.get(ALIAS),
            "breaches": {},
            "gates": gates,
        }
        approved = not plan.require_approval or candidate.approval_state == "approved"
        if not approved:
            request = self._approval_request(reg, model_name, candidate.version, evidence)
            watch["approval_request"] = request.request_id
            approved = request.state == "approved"
        elif plan.require_approval:  # approved by an earlier rollout's request, not applied
            waiting = [
                r
                for r in reg.list_requests(name=model_name, state="approved")
                if r.version == candidate.version and r.alias == ALIAS
                if r.apply_at == "promotion"
            ]
            if waiting:
                watch["approval_request"] = waiting[-1].request_id
        rollout = self.store.create(
            endpoint=endpoint,
            model_name=model_name,
            version=str(candidate.version),
            plan=plan,
            watch=watch,
        )
        if approved:
            self._begin(rollout, time.time(), "approved")
            return self.get(rollout.rollout_id)
        return rollout

    def _gate_evidence(
        self, model_name: str, version: int, *, force: bool, reason: str
    ) -> dict[str, Any]:
        """What the rollout starts on: the passed gate evaluation, or an admin's forcing
        past failed (or missing) gates with the reason, and what failed."""
        from loopstack.auth import Role
        from loopstack.errors import GateFailed
        from loopstack.loop._gate_store import gate_report, require_gates_passed

        if not force:
            passed = require_gates_passed(
                model_name, version, stores=self.stores, project_id=self.project_id
            )
            return {
                "evaluation_id": passed.evaluation_id,
                "passed": True,
                "gates": [r.gate for r in passed.results],
            }
        if self.role is not None and self.role < Role.ADMIN:
            raise Forbidden(
                f"forcing a rollout past its gates needs the 'admin' role in this project; "
                f"{self.actor!r} holds {self.role.value!r}"
            )
        if not isinstance(reason, str) or not reason.strip():
            raise Invalid(
                "forcing a rollout past its gates needs a reason (it is audited); got none",
                field="reason",
            )
        report = gate_report(model_name, version, stores=self.stores, project_id=self.project_id)
        try:
            require_gates_passed(
                model_name, version, stores=self.stores, project_id=self.project_id
            )
            failed = ""
        except GateFailed as exc:
            failed = str(exc)
        return {
            "evaluation_id": None if report is None else report.evaluation_id,
            "passed": report is not None and report.passed,
            "gates": [] if report is None else [r.gate for r in report.results],
            "forced_by": self.actor,
            "force_reason": reason.strip(),
            "failed": failed,
        }

    def _approval_request(
        self, reg: Any, model_name: str, version: int, evidence: dict[str, Any] | None
    ) -> Any:
        for r in reg.list_requests(name=model_name, state="pending"):
            if r.version == version and r.alias == ALIAS:
                # one approval system: the registry's request, adopted (it moves the
                # alias at the rollout's promotion, not at its approval)
                return r if r.apply_at == "promotion" else reg.defer_request(r.request_id)
        return reg.request_promotion(
            model_name, version, alias=ALIAS, evidence=evidence, apply_at="promotion"
        )

    def approve(self, rollout_id: int, *, comment: str = "") -> Rollout:
        """Approve the rollout's registry request as this actor (an ml-engineer other
        than the version's author, unless the project's policy allows it)."""
        self._require_engineer("approving")
        rollout = self.get(rollout_id)
        request_id = rollout.watch.get("approval_request")
        if rollout.status != "awaiting_approval" or not request_id:
            raise Conflict(f"rollout {rollout_id} awaits no approval (it is {rollout.status})")
        self._registry().decide(request_id, approve=True, comment=comment)
        return rollout

    # -- the controller's step ------------------------------------------------------------
    def tick(self, now: float | None = None) -> builtins.list[RolloutEvent]:
        """Move every rollout under way one step: start the approved, evaluate the
        guardrails of those due (every ``interval_s``), roll back on the Nth breach in a
        row, advance a baked step, promote after the last. ``now``: epoch seconds.

        One ticker acts per project at a time (the lease ``rollouts:<project>``): a
        second one that ticks meanwhile does nothing and returns no events."""
        from loopstack.store.metadata import acquire_lease, release_lease

        now = time.time() if now is None else now
        lease = f"rollouts:{self.project_id}"
        if acquire_lease(self.stores.db, lease, self._holder, ttl_s=LEASE_TTL_S) is None:
            return []
        events: builtins.list[RolloutEvent] = []
        try:
            for rollout in reversed(self.store.list(statuses=ACTIVE)):
                events.extend(self._tick_safely(rollout, now))
        finally:
            release_lease(self.stores.db, lease, self._holder)
        return events

    def _tick_safely(self, rollout: Rollout, now: float) -> builtins.list[RolloutEvent]:
        try:
            return self._tick_one(rollout, now)
        except Conflict as exc:  # someone acted on it meanwhile: the next tick sees it
            log.info("rollout %s: %s", rollout.rollout_id, exc)
        except (Overloaded, StoreUnavailable) as exc:  # passing: the next tick retries
            log.warning("rollout %s: %s", rollout.rollout_id, exc)
        except LoopstackError as exc:  # it cannot go on: off the traffic, with the reason
            try:
                return [self._fail(rollout, f"{type(exc).__name__}: {exc}")]
            except LoopstackError as again:
                log.warning("rollout %s: cannot fail it: %s", rollout.rollout_id, again)
        return []

    def _tick_one(self, rollout: Rollout, now: float) -> builtins.list[RolloutEvent]:
        if rollout.status == "awaiting_approval":
            request_id = rollout.watch.get("approval_request")
            state = self._request_state(rollout.model_name, request_id)
            if state in ("approved", "applied"):
                return [self._begin(rollout, now, "approved")]
            if state in ("rejected", "cancelled"):
                return [self._fail(rollout, f"the approval request {request_id} was {state}")]
            return []
        last = rollout.watch.get("last_eval_at")
        if last is not None and now * 1000 - last < rollout.plan.interval_s * 1000 - 1:
            return []
        return self._evaluate(rollout, now)

    def _request_state(self, model_name: str, request_id: str | None) -> str:
        return str(self._request_of(model_name, request_id).state)

    def _evaluate(self, rollout: Rollout, now: float) -> builtins.list[RolloutEvent]:
        plan = rollout.plan
        got = measure_candidate(
            self.stores,
            endpoint=rollout.endpoint,
            model_name=rollout.model_name,
            version=rollout.version,
            champion_version=str(rollout.watch.get("champion_version")),
            plan=plan,
            shadowing=rollout.status == "shadow",
            now=now,
            project_id=self.project_id,
            previous_counters=rollout.watch.get("counters"),
        )
        breached = {b.guardrail.metric: b for b in got.breaches}
        counts = dict(rollout.watch.get("breaches", {}))
        for g in plan.guardrails:  # a guardrail not measured this time keeps its count
            if g.metric in breached:
                counts[g.metric] = counts.get(g.metric, 0) + 1
            elif g.metric in got.values:
                counts[g.metric] = 0
        watch = {
            **rollout.watch,
            "breaches": counts,
            "last": got.to_dict(),
            "last_eval_at": ms(now),
            "evaluations": int(rollout.watch.get("evaluations", 0)) + 1,
        }
        if got.counters is not None:
            watch["counters"] = got.counters
        worst = [m for m, n in counts.items() if n >= plan.breaches_to_rollback and m in breached]
        if worst:
            b = breached[worst[0]]
            reason = (
                f"guardrail {b.guardrail} breached {counts[worst[0]]} times in a row "
                f"(limit {plan.breaches_to_rollback}): {b.guardrail.metric} = {b.value:.6g}, "
                f"threshold {b.guardrail.threshold:g}"
            )
            return [self._roll_back(rollout, now, reason, watch=watch)]
        detail = {"phase": rollout.phase, **got.to_dict(), "breaches_in_a_row": counts}
        if breached:
            rollout = self.store.change(rollout, "breach", watch=watch, payload=detail)
            return [RolloutEvent(rollout.rollout_id, rollout.endpoint, "breach", detail)]
        rollout = self.store.change(rollout, "evaluate", watch=watch, audited=False)
        events = [RolloutEvent(rollout.rollout_id, rollout.endpoint, "evaluated", detail)]
        bake = (
            plan.shadow_s if rollout.status == "shadow" else plan.steps[rollout.step_index].bake_s
        )
        baked = now * 1000 - (rollout.step_started_at or 0) >= (bake or 0) * 1000
        if baked and got.values.get("requests", 0) >= plan.min_requests:
            events.append(self._advance(rollout, now))
        return events

    # -- overrides ----------------------------------------------------------------------
    def _under_way(self, rollout_id: int, verb: str) -> Rollout:
        self._require_engineer(verb)
        rollout = self.get(rollout_id)
        if rollout.status in FINAL:
            raise Conflict(f"rollout {rollout_id} is {rollout.status} already: nothing to {verb}")
        return rollout

    def pause(self, rollout_id: int) -> Rollout:
        """Hold the rollout where it is (the traffic split stays; nothing is evaluated or
        advanced) until ``resume``."""
        rollout = self._under_way(rollout_id, "pause")
        if rollout.status == "paused":
            raise Conflict(f"rollout {rollout_id} is paused already")
        watch = {**rollout.watch, "paused_from": rollout.status, "paused_at": ms(time.time())}
        return self.store.change(
            rollout, "pause", status="paused", watch=watch, payload={"by": self.actor}
        )

    def resume(self, rollout_id: int) -> Rollout:
        """Go on from where ``pause`` held it; the time paused does not count as baking."""
        rollout = self._under_way(rollout_id, "resume")
        if rollout.status != "paused":
            raise Conflict(f"rollout {rollout_id} is not paused (it is {rollout.status})")
        watch = dict(rollout.watch)
        status = watch.pop("paused_from")
        held = ms(time.time()) - int(watch.pop("paused_at"))
        started = None if rollout.step_started_at is None else rollout.step_started_at + held
        return self.store.change(
            rollout,
            "resume",
            status=status,
            step_started_at=started,
            watch={**watch, "breaches": {}},
            payload={"by": self.actor, "paused_ms": held},
        )

    def _withdraw(self, request_id: str | None) -> str:
        """Reject the rollout's pending request, so nobody approves a version for a
        rollout that no longer runs (its alias would not move: only a promotion applies
        it); what became of it, for the reason."""
        if not request_id:
            return ""
        try:
            self._registry().decide(request_id, approve=False, comment="its rollout was cancelled")
        except Conflict:  # decided meanwhile
            return ""
        except Forbidden:  # four eyes: the requester may not decide its own request
            return (
                f"; its approval request {request_id} stays pending: have another "
                f"ml-engineer reject it (`loopstack models reject {request_id}`)"
            )
        return f"; its approval request {request_id} was rejected"

    def force_promote(self, rollout_id: int) -> Rollout:
        """Promote now, whatever step it is on (an admin may also put an unapproved
        version on a production endpoint this way)."""
        from loopstack.auth import Role

        rollout = self._under_way(rollout_id, "force promote")
        force = self.role is None or self.role >= Role.ADMIN
        self._promote(rollout, time.time(), f"forced by {self.actor}", force=force)
        return self.get(rollout_id)

    def force_rollback(self, rollout_id: int) -> Rollout:
        """Roll back now: the champion alone answers again."""
        rollout = self._under_way(rollout_id, "force rollback")
        if rollout.status in ("awaiting_approval", "paused") and rollout.step_started_at is None:
            reason = f"cancelled by {self.actor} before any traffic moved"
            reason += self._withdraw(rollout.watch.get("approval_request"))
            self.store.change(rollout, "rollback", status="rolled_back", reason=reason)
        else:
            self._roll_back(rollout, time.time(), f"forced by {self.actor}")
        return self.get(rollout_id)
