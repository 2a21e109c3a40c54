"""The controller of the closed loop: evaluate triggers, launch what fired, once.

One controller acts per database: each step first takes (or renews) the lease
``loop-controller``; a controller without it does nothing that step. Acting twice is
ruled out twice over: a firing is recorded under a unique ``(trigger, dedup key)``, so
a second recording of the same event fails, and it is launched only by the controller
that moved it from pending to running (a conditional update).

Crash safety: while a pipeline runs, a heartbeat thread renews the lease and touches
the firing. A running firing whose heartbeat stopped for longer than its launcher's
lease length was left by a dead controller; the next one takes it over (a conditional
update on the firing as it read it) and finishes it: resumed when its pipeline run is
known (recorded, or found in ``pipeline_runs`` started after the claim), else
launched, once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, select

from loopstack.errors import GateFailed, Invalid
from loopstack.loop._cooldown import hold_reason
from loopstack.loop._firings import (
    FiringView,
    claim_firing,
    finish_firing,
    firings,
    record_firing,
    save_trigger_state,
    set_firing_run,
    touch_firing,
)
from loopstack.loop._launching import acting_in, default_launch, default_resume, gate_failure
from loopstack.loop._trigger_store import StoredTrigger, _stored
from loopstack.loop._triggers import TriggerContext, check
from loopstack.store.metadata import acquire_lease, release_lease
from loopstack.store.metadata.schema_loop import LoopTriggerRow, PipelineRunRow

__all__ = ["LEASE", "Controller", "ControllerEvent", "StepReport"]

log = logging.getLogger(__name__)

#: the lease that elects the one active controller of a database
LEASE = "loop-controller"
_T = cast(Table, LoopTriggerRow.__table__)
_R = cast(Table, PipelineRunRow.__table__)


@dataclass(frozen=True)
class ControllerEvent:
    """Something a controller step did: ``kind`` is fired, held (over its threshold, but
    its cooldown holds it back: said once per window), launched, resumed, done, failed,
    stopped or error."""

    kind: str
    trigger: str
    message: str
    firing_id: int | None = None


@dataclass
class StepReport:
    """One step: whether this controller held the lease, and what it did."""

    active: bool
    holder: str
    events: list[ControllerEvent] = field(default_factory=list)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Controller:
    """Evaluates the enabled triggers (of ``project_id``, or of every project when None)
    and launches their pipelines, while it holds the lease.

    ``launch(entrypoint, params)`` and ``resume(run_uuid)`` default to
    ``loopstack.pipelines.run_entrypoint`` / ``resume`` and answer an object with
    ``run_uuid`` and ``status``; ``observe`` replaces ``monitoring.observe`` for drift
    and performance triggers; ``hook(phase, firing_id)`` is called after each phase
    (``recorded``, ``claimed``, ``launched``), for tests that stop a controller there.

    >>> Controller(open_stores()).run(iterations=1)    # doctest: +SKIP
    """

    def __init__(
        self,
        stores: Any = None,
        *,
        project_id: int | None = None,
        holder: str | None = None,
        interval_s: float = 10.0,
        lease_ttl_s: float = 30.0,
        launch: Callable[[str, dict[str, Any]], Any] | None = None,
        resume: Callable[[str], Any] | None = None,
        observe: Callable[..., Any] | None = None,
        hook: Callable[[str, int], None] | None = None,
        actor: str = "loop-controller",
        rollouts: bool = True,
    ) -> None:
        if stores is None:
            from loopstack.store import open_stores

            stores = open_stores()
        for name, value in (("interval_s", interval_s), ("lease_ttl_s", lease_ttl_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise Invalid(
                    f"the {name!r} parameter must be a positive number of seconds; "
                    f"got {value!r} instead",
                    field=name,
                )
        self.stores = stores
        self.db = stores.db
        self.project_id = project_id
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.interval_s = float(interval_s)
        self.lease_ttl_s = float(lease_ttl_s)
        self.launch = launch or default_launch
        self.resume = resume or default_resume
        self.observe = observe
        self.hook = hook
        self.actor = actor
        #: whether each step also ticks the rollouts under way (``Rollouts.tick``)
        self.rollouts = rollouts
        self.active = False

    # -- the lease --------------------------------------------------------------------
    def _hold(self) -> bool:
        self.active = acquire_lease(self.db, LEASE, self.holder, self.lease_ttl_s) is not None
        return self.active

    def _heartbeat(self, firing_id: int) -> tuple[threading.Event, threading.Thread]:
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.lease_ttl_s / 3):
                try:
                    touch_firing(self.db, firing_id)
                    if not self._hold():
                        log.warning("controller %s lost its lease mid-run", self.holder)
                except Exception:  # noqa: BLE001 - a heartbeat must not die of a busy store
                    log.exception("controller %s could not renew its lease", self.holder)

        thread = threading.Thread(target=beat, name="loop-lease", daemon=True)
        thread.start()
        return done, thread

    def release(self) -> None:
        """Give the lease up (another controller can take over at once)."""
        release_lease(self.db, LEASE, self.holder)
        self.active = False

    # -- a step -----------------------------------------------------------------------
    def step(self, now: float | None = None) -> StepReport:
        """Renew the lease; if held, finish orphaned firings, record what the triggers
        see at ``now`` (epoch seconds, default the clock) and launch what is pending."""
        report = StepReport(self._hold(), self.holder)
        if not report.active:
            return report
        at = time.time() if now is None else now
        triggers = self._triggers()
        by_name = {(t.project_id, t.name): t for t in triggers}
        for running in firings(self.db, project_id=self.project_id, statuses=("running",)):
            if not self.active:
                return report
            ttl_ms = 1000 * float(running.outcome.get("ttl_s", self.lease_ttl_s))
            if running.updated_at + ttl_ms < _now_ms():  # its heartbeat stopped
                self._recover(running, by_name, report)
        for stored in triggers:
            if stored.enabled and self.active:
                self._evaluate(stored, at, report)
        pending = firings(
            self.db, project_id=self.project_id, statuses=("pending",), newest_first=False
        )
        for firing in pending:
            if not self.active:
                break
            self._start(firing, by_name, report)
        if self.rollouts and self.active:
            self._tick_rollouts(at, report)
        return report

    def _tick_rollouts(self, now: float, report: StepReport) -> None:
        from loopstack.loop._rollout_ticks import tick_rollouts

        for kind, endpoint, message in tick_rollouts(self.stores, self.project_id, self.actor, now):
            report.events.append(ControllerEvent(kind, endpoint, message))

    def _triggers(self) -> list[StoredTrigger]:
        q = select(_T).order_by(_T.c.trigger_id)
        if self.project_id is not None:
            q = q.where(_T.c.project_id == self.project_id)
        return [_stored(r) for r in self.db.read(lambda conn: conn.execute(q).all())]

    def _phase(self, phase: str, firing_id: int) -> None:
        if self.hook is not None:
            self.hook(phase, firing_id)

    def _evaluate(self, stored: StoredTrigger, now: float, report: StepReport) -> None:
        ctx = TriggerContext(
            self.stores,
            stored.project_id,
            self.observe,
            created_at=stored.created_at / 1000,
            hold=lambda at: hold_reason(self.db, stored, at),
        )
        try:
            seen = check(stored.trigger, dict(stored.state), ctx, now)
        except Exception as exc:  # noqa: BLE001 - one broken trigger must not stop the rest
            log.warning("trigger %r could not be evaluated: %s", stored.name, exc)
            report.events.append(ControllerEvent("error", stored.name, f"check failed: {exc}"))
            return
        for firing in seen:
            if firing.held is not None:  # over its threshold, cooling down: said, not fired
                state = firing.state or {}
                save_trigger_state(self.db, stored.trigger_id, state)
                message = str(state.get("held_reason") or f"{firing.reason} but {firing.held}")
                report.events.append(ControllerEvent("held", stored.name, message))
                continue
            firing_id = record_firing(
                self.db,
                trigger_id=stored.trigger_id,
                project_id=stored.project_id,
                dedup_key=firing.dedup_key,
                reason=firing.reason,
                state=firing.state,
                actor=self.actor,
                at_ms=int(now * 1000),
            )
            if firing_id is None:  # recorded before (by us, or a controller before us)
                continue
            report.events.append(ControllerEvent("fired", stored.name, firing.reason, firing_id))
            self._phase("recorded", firing_id)

    # -- launching --------------------------------------------------------------------
    def _start(
        self,
        firing: FiringView,
        by_name: dict[tuple[int, str], StoredTrigger],
        report: StepReport,
    ) -> None:
        outcome = {"holder": self.holder, "claimed_at": _now_ms(), "ttl_s": self.lease_ttl_s}
        if not claim_firing(self.db, firing, outcome, actor=self.actor):
            return  # another controller has it
        self._phase("claimed", firing.firing_id)
        stored = by_name.get((firing.project_id, firing.trigger))
        params = dict(stored.trigger.params) if stored is not None else {}
        report.events.append(
            ControllerEvent("launched", firing.trigger, firing.pipeline, firing.firing_id)
        )
        self._run(firing, outcome, lambda: self.launch(firing.pipeline, params), report)

    def _recover(
        self,
        firing: FiringView,
        by_name: dict[tuple[int, str], StoredTrigger],
        report: StepReport,
    ) -> None:
        previous = dict(firing.outcome)
        run_uuid = firing.pipeline_run_uuid or self._started_run(firing, previous)
        outcome = {
            **previous,
            "holder": self.holder,
            "recovered_from": previous.get("holder"),
            "first_claimed_at": previous.get("first_claimed_at", previous.get("claimed_at")),
            "claimed_at": _now_ms(),
            "ttl_s": self.lease_ttl_s,
        }
        if not claim_firing(self.db, firing, outcome, actor=self.actor, expect="running"):
            return
        if run_uuid is not None and firing.pipeline_run_uuid is None:  # found, not recorded
            set_firing_run(self.db, firing, run_uuid, outcome, actor=self.actor)
        status = self._run_status(run_uuid) if run_uuid is not None else None
        if status == "FINISHED":  # it ran to the end; only the record was left
            done = SimpleNamespace(run_uuid=run_uuid, status=status)
            self._run(firing, {**outcome, "resumed": False}, lambda: done, report)
            return
        if run_uuid is None:  # claimed, never launched: launch it now, once
            stored = by_name.get((firing.project_id, firing.trigger))
            params = dict(stored.trigger.params) if stored is not None else {}
            message = f"{firing.pipeline} (left unlaunched by {previous.get('holder')})"
            report.events.append(
                ControllerEvent("launched", firing.trigger, message, firing.firing_id)
            )
            self._run(firing, outcome, lambda: self.launch(firing.pipeline, params), report)
            return
        message = f"run {run_uuid} (left by {previous.get('holder')})"
        report.events.append(ControllerEvent("resumed", firing.trigger, message, firing.firing_id))
        uid = run_uuid
        self._run(firing, {**outcome, "resumed": True}, lambda: self.resume(uid), report)

    def _run_status(self, run_uuid: str) -> str | None:
        """The status ``pipeline_runs`` has for the run (None: not recorded there)."""
        q = select(_R.c.status).where(_R.c.run_uuid == run_uuid)
        got = self.db.read(lambda conn: conn.execute(q).scalar())
        return None if got is None else str(got)

    def _started_run(self, firing: FiringView, outcome: dict[str, Any]) -> str | None:
        """The pipeline run a dead controller started for ``firing`` before it could
        record it: one of that entrypoint created after the first claim."""
        claimed = outcome.get("first_claimed_at", outcome.get("claimed_at"))
        if claimed is None:
            return None
        q = (
            select(_R.c.run_uuid)
            .where(
                _R.c.entrypoint == firing.pipeline,
                _R.c.project_id == firing.project_id,
                _R.c.created_at >= int(claimed),
            )
            .order_by(_R.c.created_at)
            .limit(1)
        )
        got = self.db.read(lambda conn: conn.execute(q).scalar())
        return None if got is None else str(got)

    def _run(
        self,
        firing: FiringView,
        outcome: dict[str, Any],
        go: Callable[[], Any],
        report: StepReport,
    ) -> None:
        fid = firing.firing_id
        done, beat = self._heartbeat(fid)
        try:
            with acting_in(self.db, firing.project_id):
                run = go()
        except Exception as exc:  # noqa: BLE001 - the pipeline's failure is the firing's
            gate = gate_failure(exc)
            if gate is not None:
                self._end(firing, "stopped", {**outcome, "gate": gate}, report, exc)
            else:
                error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                self._end(firing, "failed", {**outcome, "error": error}, report, exc)
            return
        finally:
            done.set()
            beat.join()
        run_uuid = getattr(run, "run_uuid", None)
        status = str(getattr(run, "status", "FINISHED") or "FINISHED")
        outcome = {**outcome, "pipeline_status": status}
        if run_uuid is not None:
            set_firing_run(self.db, firing, str(run_uuid), outcome, actor=self.actor)
            self._phase("launched", fid)
        ended = {"FINISHED": "done", "STOPPED": "stopped"}.get(status.upper(), "failed")
        error = getattr(run, "error", None)
        if error:
            outcome["error"] = str(error)
            if "GateFailed" in str(error) or isinstance(error, GateFailed):
                ended = "stopped"
        self._end(firing, ended, outcome, report, None, run_uuid)

    def _end(
        self,
        firing: FiringView,
        status: str,
        outcome: dict[str, Any],
        report: StepReport,
        exc: BaseException | None,
        run_uuid: Any = None,
    ) -> None:
        if run_uuid is None and exc is not None:
            run_uuid = getattr(exc, "run_uuid", None)
        outcome = {**outcome, "finished_at": _now_ms()}
        finish_firing(
            self.db,
            firing,
            status,
            outcome,
            actor=self.actor,
            run_uuid=None if run_uuid is None else str(run_uuid),
        )
        why = outcome.get("gate") or outcome.get("error") or (f"run {run_uuid}" if run_uuid else "")
        report.events.append(ControllerEvent(status, firing.trigger, str(why), firing.firing_id))

    # -- the process ------------------------------------------------------------------
    def run(
        self,
        iterations: int | None = None,
        stop: threading.Event | None = None,
        on_step: Callable[[StepReport], None] | None = None,
    ) -> None:
        """Step every ``interval_s`` until ``stop`` is set (or ``iterations`` steps),
        then give the lease up."""
        if iterations is not None and (isinstance(iterations, bool) or iterations < 1):
            raise Invalid(
                f"the 'iterations' parameter must be a positive integer or None; "
                f"got {iterations!r} instead",
                field="iterations",
            )
        stop = stop or threading.Event()
        count = 0
        try:
            while not stop.is_set():
                report = self.step()
                if on_step is not None:
                    on_step(report)
                count += 1
                if iterations is not None and count >= iterations:
                    break
                stop.wait(self.interval_s)
        finally:
            try:
                self.release()
            except Exception:  # noqa: BLE001 - the lease expires by itself
                log.warning("controller %s could not release its lease", self.holder)
