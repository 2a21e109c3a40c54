"""The demo's closed loop: traffic and alerts, the drift that fires the retraining, v2's
canary and promotion, and v3's canary rolled back when its stale feature shows live."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from loopstack.demo._common import (
    BASE_FEATURES,
    ENDPOINT,
    MODEL,
    PIPELINE,
    TERMINAL,
    VELOCITY,
    VELOCITY_TTL_S,
    WINDOW_S,
    DemoFailed,
    gate_lines,
)
from loopstack.demo._setup import Setup


class Demo(Setup):
    """Every stage of the story (see ``loopstack.demo._run``)."""

    # 5 ------------------------------------------------------------------------------------
    def watch(self) -> None:
        import loopstack as ls
        from loopstack.demo._traffic import Traffic
        from loopstack.loop import Controller, Trigger, TriggerStore
        from loopstack.monitoring import AlertRule, AlertStore

        self.say.head("traffic, monitoring, and the triggers")
        store = ls.FeatureStore()
        self.traffic = Traffic(
            self.world,
            self.outcome.url,
            ENDPOINT,
            self.data / "transactions.parquet",
            self.data / "customer_velocity.parquet",
            push=lambda rows: store.push("customer_velocity", rows),
        )
        self.alerts = AlertStore(self.stores)
        rules = [
            AlertRule("inputs-drift", "drift_share", ">=", 0.3, severity="warning",
                      category="model_quality", labels={"endpoint": ENDPOINT}),
            AlertRule("auc-low", "roc_auc", "<", 0.75, severity="critical",
                      category="model_quality", for_windows=2, labels={"endpoint": ENDPOINT}),
        ]  # fmt: skip
        for rule in rules:
            self.alerts.save_rule(rule)
        self.say.line(
            "alert rules: inputs-drift (drift_share >= 0.3), auc-low (roc_auc < 0.75, "
            "2 windows in a row); alerts go to the log and the metadata DB"
        )
        triggers = TriggerStore(self.stores)
        triggers.add(
            Trigger(
                "fraud-drift", "drift", PIPELINE,
                params=self._params(BASE_FEATURES),
                spec={"endpoint": ENDPOINT, "above": 0.3, "window": WINDOW_S, "cooldown": "10m"},
            )
        )  # fmt: skip
        self.say.line(
            f"trigger fraud-drift: drift_share > 0.3 over {WINDOW_S} s windows runs {PIPELINE}; "
            "then it cools down for 10 minutes (and while a rollout is under way)"
        )
        self.controller = Controller(self.stores, holder="demo", interval_s=0.5)
        self.traffic.start()
        self.say.line(
            f"payments: {self.traffic.rate:g} requests/s of {self.traffic.batch}; "
            f"labels come back {self.traffic.label_delay_s:g} s later"
        )
        began = time.monotonic()
        # the drift starts on a window's boundary, so the trigger's first drifted window
        # holds a whole window of the new world (enough labelled rows to learn it from)
        boundary = (time.time() + self.options.calm_s) // WINDOW_S * WINDOW_S + WINDOW_S
        with self.say.waiting("calm traffic") as status:
            while time.time() < boundary:
                self._tick(status)
        calm = time.monotonic() - began
        self.traffic.drifted = True
        sent = sum(self.traffic.counts.requests.values())
        self.say.line(
            f"{sent:,} requests in {calm:.0f} s ({sent / calm:.1f}/s), "
            f"{self.traffic.counts.labelled:,} payments labelled"
        )
        self.say.line(
            "[bold yellow]the world drifts:[/] prices x1.5, more payments abroad, and a fraud "
            "ring on domestic electronics and gaming"
        )

    def _params(self, features: list[str]) -> dict[str, Any]:
        return {
            "warehouse": str(self.data / "transactions.parquet"),
            "features": features,
            "model": MODEL,
            "endpoint": ENDPOINT,
            "recent_after": self.history_end.isoformat(),
            "holdout": 0.35,
            "plan": {
                "steps": [
                    {"weight": 0.25, "bake_s": 8},
                    {"weight": 0.5, "bake_s": 8},
                    {"weight": 1.0, "bake_s": 0},
                ],
                "guardrails": [
                    {"metric": "error_rate", "op": "<=", "threshold": 0.02},
                    {"metric": "latency_p99_ms", "op": "<", "threshold": 2000},
                    {"metric": "recall", "op": ">=", "threshold": 0.5},
                ],
                "interval_s": 2,
                "window_s": 10,
                "min_requests": 15,
                "breaches_to_rollback": 2,
                "metrics_url": f"{self.outcome.url}/metrics",
            },
        }

    last_monitor: float = 0.0

    def _tick(self, status: Callable[[str], None]) -> list[Any]:
        """One turn: the controller's step, the alert rules every 5 s, the traffic line."""
        from loopstack.monitoring._monitor import monitor_once

        report = self.controller.step()
        for event in report.events:
            self.say.line(f"[magenta]loop[/] {event.kind}: {event.trigger} {event.message}")
            if event.kind == "fired":
                self.outcome.firings.append(f"{event.trigger}: {event.message}")
        if time.monotonic() - self.last_monitor >= 5:
            self.last_monitor = time.monotonic()
            for _, events in monitor_once(self.alerts, [ENDPOINT], window=f"{WINDOW_S}s"):
                for e in events:
                    if e.kind not in ("fired", "resolved"):
                        continue
                    rule = e.rule
                    text = (
                        f"alert {e.kind}: {rule.name} ({rule.metric} = {e.value:.3g}, "
                        f"{rule.comparison} {rule.threshold:g} breaks it)"
                    )
                    self.outcome.alerts.append(text)
                    self.say.line(f"[red]{text}[/]" if e.kind == "fired" else text)
        counts = self.traffic.counts
        served = ", ".join(f"v{v}: {n}" for v, n in sorted(counts.requests.items()))
        status(f"requests {served}; labelled {counts.labelled:,}")
        if self.traffic.errors:
            raise DemoFailed(f"the traffic failed: {self.traffic.errors[-1]}")
        time.sleep(0.25)
        return list(report.events)

    # 6 and 7 ----------------------------------------------------------------------------
    def _wait_for_rollout(self, after: int) -> Any:
        """Tick until the controller's pipeline started a rollout newer than ``after``."""
        from loopstack.loop import Rollouts

        deadline = time.monotonic() + self.options.stage_timeout_s
        with self.say.waiting("waiting for the loop") as status:
            while time.monotonic() < deadline:
                events = self._tick(status)
                stopped = [e for e in events if e.kind in ("stopped", "failed", "error")]
                if stopped:
                    raise DemoFailed(f"the loop stopped: {stopped[0].message}")
                found = [r for r in Rollouts(self.stores).list(endpoint=ENDPOINT)]
                found = [r for r in found if r.rollout_id > after]
                if found:
                    return found[0]
        raise DemoFailed(
            f"no rollout began within {self.options.stage_timeout_s:.0f} s; "
            f"the loop saw: {self.outcome.firings or 'nothing'}"
        )

    def _gates_of(self, version: int) -> None:
        from loopstack.loop import gate_report

        report = gate_report(MODEL, version)
        if report is not None:
            for line in gate_lines(report):
                self.say.line(line)

    def _drive(self, rollout: Any, approve_when: Callable[[], bool] | None = None) -> Any:
        """Approve ``rollout`` as risk-lead (once ``approve_when`` holds), then tick until
        it ends; the final rollout."""
        from loopstack.loop import Rollouts

        deadline = time.monotonic() + self.options.stage_timeout_s
        approved = False
        with self.say.waiting(f"rollout #{rollout.rollout_id}") as status:
            while time.monotonic() < deadline:
                now = Rollouts(self.stores).get(rollout.rollout_id)
                if now.status in TERMINAL:
                    return now
                ready = approve_when is None or approve_when()
                if not approved and now.status == "awaiting_approval" and ready:
                    Rollouts(self.stores, actor="risk-lead").approve(
                        rollout.rollout_id, comment="gates passed; canary it"
                    )
                    self.say.line(
                        f"risk-lead approved v{now.version} for production (rollout "
                        f"#{now.rollout_id}); the canary starts"
                    )
                    approved = True
                self._tick(status)
        raise DemoFailed(f"rollout #{rollout.rollout_id} did not finish in time")

    def round_one(self) -> None:

        self.say.head("drift -> alerts -> retraining -> gates -> canary -> promotion")
        rollout = self._wait_for_rollout(0)
        self.say.line(f"v{rollout.version} registered by the pipeline; its gates:")
        self._gates_of(int(rollout.version))
        done = self._drive(rollout)
        self._ended(done)
        if done.status != "promoted":
            raise DemoFailed(f"v{done.version} was not promoted: {done.status} ({done.reason})")
        self.first_rollout = done.rollout_id

    first_rollout: int = 0

    def round_two(self) -> None:
        from loopstack.loop import Trigger, TriggerStore

        self.say.head("a challenger that passes offline and fails live")
        triggers = TriggerStore(self.stores)
        triggers.add(
            Trigger("velocity-challenger", "manual", PIPELINE,
                    params=self._params([*BASE_FEATURES, VELOCITY]))
        )  # fmt: skip
        triggers.fire_manual("velocity-challenger", "a data scientist adds the velocity stream")
        self.say.line(
            "a data scientist fires velocity-challenger: the same pipeline, plus "
            f"{VELOCITY} (the stream job's last-hour count per card)"
        )
        rollout = self._wait_for_rollout(self.first_rollout)
        self.say.line(f"v{rollout.version}'s gates (offline, point in time):")
        self._gates_of(int(rollout.version))
        self.traffic.velocity_job = False
        stopped = time.monotonic()
        self.say.line(
            "[bold yellow]the velocity stream job stops[/] (its consumer lost the broker); "
            f"nobody notices: its values go stale after {VELOCITY_TTL_S} s"
        )
        done = self._drive(
            rollout, approve_when=lambda: time.monotonic() - stopped > VELOCITY_TTL_S + 1
        )
        self._ended(done)
        if done.status != "rolled_back":
            raise DemoFailed(f"v{done.version} was not rolled back: {done.status}")

    def _ended(self, rollout: Any) -> None:
        from loopstack.registry import SqlRegistry

        counts = self.traffic.counts
        v = str(rollout.version)
        recall = counts.caught[v] / counts.frauds[v] if counts.frauds[v] else float("nan")
        production = SqlRegistry(self.stores).get_registered_model(MODEL).aliases.get("production")
        colour = "green" if rollout.status == "promoted" else "red"
        self.say.line(
            f"[bold {colour}]rollout #{rollout.rollout_id} {rollout.status}[/]: "
            f"{rollout.reason or ''}"
        )
        self.say.line(
            f"v{v} answered {counts.requests[v]:,} requests ({counts.degraded[v]:,} degraded), "
            f"caught {counts.caught[v]}/{counts.frauds[v]} frauds (recall {recall:.2f}); "
            f"production is v{production}"
        )
        self.outcome.rollouts[int(rollout.rollout_id)] = rollout.status
        self.outcome.versions[int(rollout.version)] = rollout.status

    # 8 ------------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        for proc in self.children:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
