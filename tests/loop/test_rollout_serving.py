"""Rollouts end to end: a real serving app answering HTTP traffic from a stored
deployment, the rollout revising that deployment step by step, the guardrails read from
what the app logged (and its /metrics), and the rollouts' REST API with its roles."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from loopstack.loop import CanaryStep, Guardrail, RolloutEvent, RolloutPlan, Rollouts
from loopstack.registry import SqlRegistry
from loopstack.server import create_serving_app
from loopstack.serving import DeploymentSource, PredictionLog, ServingRuntime, SqlDeployments
from loopstack.store.events import EventLog
from tests.conftest import ThreadedServer
from tests.loop.rollout_models import Models, three_versions
from tests.serving.conftest import eventually


@pytest.fixture
def models() -> Models:
    """The three versions in this test's LOOPSTACK_HOME (SQLite)."""
    return three_versions()


@dataclass
class Live:
    url: str
    models: Models
    answers: Counter[tuple[int, str | None]] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self) -> None:
        """Requests with random routing keys until stopped; who answered, counted."""
        records = self.models.frame.head(2).to_dict("records")
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                got = client.post(
                    f"{self.url}/endpoints/iris-api/predict",
                    json={"records": records},
                    headers={"X-Routing-Key": uuid.uuid4().hex},
                )
                version = got.json().get("model_version") if got.status_code == 200 else None
                self.answers[(got.status_code, version)] += 1
                time.sleep(0.005)


@pytest.fixture
def live(models: Models) -> Iterator[Live]:
    """The serving app over the stored ``iris-api`` deployment (refreshed every 0.1 s),
    its prediction log flushed every 0.2 s, and a thread sending it traffic."""
    store = SqlDeployments(models.stores)
    runtime = ServingRuntime([])
    app = create_serving_app(
        runtime,
        refresh_s=0.1,
        deployments=DeploymentSource(store, ["iris-api"], alias_refresh_s=0.1),
        prediction_log=PredictionLog(EventLog(models.stores), flush_interval_s=0.2),
    )
    eventually(lambda: runtime.ready)
    try:
        with ThreadedServer(app) as server:
            traffic = Live(server.url, models)
            sender = threading.Thread(target=traffic.send, daemon=True)
            sender.start()
            yield traffic
            traffic.stop.set()
            sender.join(30)
    finally:
        app.state.stop_refresh.set()


def _drive(rollouts: Rollouts, rollout_id: int, deadline_s: float = 120) -> list[RolloutEvent]:
    """Tick (as the controller does) until the rollout is finished; its events."""
    events: list[RolloutEvent] = []
    deadline = time.monotonic() + deadline_s
    while rollouts.get(rollout_id).status not in ("promoted", "rolled_back", "failed"):
        assert time.monotonic() < deadline, f"rollout still {rollouts.get(rollout_id).status}"
        events.extend(e for e in rollouts.tick() if e.rollout_id == rollout_id)
        time.sleep(0.1)
    return events


def _approved(m: Models, version: int, plan: RolloutPlan) -> tuple[Rollouts, int]:
    rollouts = Rollouts(m.stores, actor="alice")
    rollout = rollouts.start("iris-api", "iris", version, plan)
    Rollouts(m.stores, actor="bob").approve(rollout.rollout_id)
    return rollouts, rollout.rollout_id


@pytest.mark.slow
def test_a_good_candidate_shadows_then_goes_5_50_100_and_is_promoted(live: Live) -> None:
    plan = RolloutPlan(
        shadow_s=1,
        steps=[CanaryStep(0.05, 1), CanaryStep(0.5, 1), CanaryStep(1.0, 0)],
        guardrails=[
            Guardrail("shadow_agreement", ">=", 0.5),
            Guardrail("latency_p99_ms", "<", 5000),
            Guardrail("error_rate", "<=", 0.05),
        ],
        interval_s=0.3,
        window_s=3,
        min_requests=1,
        metrics_url=f"{live.url}/metrics",
    )
    rollouts, rid = _approved(live.models, 2, plan)
    events = _drive(rollouts, rid)

    moves = [(e.kind, e.detail.get("weight")) for e in events if e.kind != "evaluated"]
    assert moves == [("shadow", None), ("canary", 0.05), ("canary", 0.5), ("promoted", None)]
    measured = [e.detail["values"] for e in events if e.kind == "evaluated"]
    shadowing = [v for v, e in zip(measured, events, strict=False) if "shadow_agreement" in v]
    assert shadowing and all(v["shadow_agreement"] >= 0.5 for v in shadowing)
    assert any(v.get("error_rate") == 0.0 for v in measured)
    d = SqlDeployments(live.models.stores).get("iris-api")
    assert d.policy == "single" and [a.version for a in d.arms] == [2]
    aliases = SqlRegistry(live.models.stores).get_registered_model("iris").aliases
    assert aliases["production"] == 2
    # the replica follows: version 2 answers everything, and no request failed meanwhile
    before = live.answers[(200, "2")]
    eventually(lambda: live.answers[(200, "2")] > before + 20)
    assert {status for status, _ in live.answers} == {200}
    assert live.answers[(200, "1")] > 0


@pytest.mark.slow
def test_a_slow_candidate_is_rolled_back_at_the_evaluation_of_its_second_breach(
    live: Live,
) -> None:
    plan = RolloutPlan(
        steps=[CanaryStep(0.25, 3600), CanaryStep(1.0, 0)],
        guardrails=[Guardrail("latency_p99_ms", "<", 150)],
        breaches_to_rollback=2,
        interval_s=0.3,
        window_s=3,
    )
    rollouts, rid = _approved(live.models, 3, plan)
    events = _drive(rollouts, rid)

    judged = [e for e in events if e.kind in ("breach", "rolled_back")]
    assert [e.kind for e in judged] == ["breach", "rolled_back"]
    assert judged[0].detail["breaches_in_a_row"] == {"latency_p99_ms": 1}
    # the rollback came with the evaluation that saw the second breach, not a tick later
    last = judged[1].detail["last"]
    assert [b["metric"] for b in last["breaches"]] == ["latency_p99_ms"]
    assert last["values"]["latency_p99_ms"] >= 150
    done = rollouts.get(rid)
    assert done.status == "rolled_back" and "latency_p99_ms" in (done.reason or "")
    d = SqlDeployments(live.models.stores).get("iris-api")
    assert d.policy == "single" and [(a.ref, a.version) for a in d.arms] == [("production", 1)]
    assert SqlRegistry(live.models.stores).get_registered_model("iris").aliases["production"] == 1
    assert live.answers[(200, "3")] > 0  # the candidate did answer before it was rolled back
    before = live.answers[(200, "1")]
    eventually(lambda: live.answers[(200, "1")] > before + 20)


def test_the_rest_api_shows_rollouts_to_a_viewer_and_refuses_its_overrides(
    models: Models, viewer_server: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, viewer = viewer_server
    plan = RolloutPlan(steps=[CanaryStep(0.05, 3600)], require_approval=False)
    rid = Rollouts(models.stores, actor="root").start("iris-api", "iris", 2, plan).rollout_id

    def call(token: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{url}/api/v1/rollouts{path}", headers=headers, **kw)

    listed = call(viewer, "GET", "")
    assert listed.status_code == 200, listed.text
    assert [(r["rollout_id"], r["phase"]) for r in listed.json()["rollouts"]] == [
        (rid, "canary 5%")
    ]
    trail = call(viewer, "GET", f"/{rid}/events").json()["events"]
    assert [e["action"] for e in trail] == ["rollout.start", "rollout.canary"]
    for verb in ("pause", "resume", "promote", "rollback"):
        refused = call(viewer, "POST", f"/{rid}/{verb}", json={})
        assert refused.status_code == 403, refused.text
    assert call(viewer, "POST", "/tick").status_code == 403
    assert call(viewer, "GET", "/999").status_code in (403, 404)

    from loopstack.loop import RestRollouts, rollouts

    monkeypatch.setenv("LOOPSTACK_TOKEN", root)
    remote = rollouts()
    assert isinstance(remote, RestRollouts)
    assert remote.pause(rid).status == "paused"
    assert remote.resume(rid).status == "canary"
    assert remote.force_rollback(rid).status == "rolled_back"
    assert [(e["action"], e["actor"]) for e in remote.events(rid)][-3:] == [
        ("rollout.pause", "root"),
        ("rollout.resume", "root"),
        ("rollout.rollback", "root"),
    ]
    bad = call(
        root,
        "POST",
        "",
        json={
            "endpoint": "iris-api",
            "model": "iris",
            "version": 2,
            "plan": {"steps": [{"weight": 2}]},
        },
    )
    assert bad.status_code == 422 and "at most 1" in bad.text
