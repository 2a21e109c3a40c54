"""Monitored values as Prometheus gauges: the collector's text output, parsed back with
prometheus_client's own parser, over SQLite and PostgreSQL; and the server's /metrics."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loopstack.monitoring import AlertRule, AlertStore, MonitorCollector, monitor_metrics
from loopstack.server import create_app
from loopstack.store import open_stores
from tests.conftest import ThreadedServer


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the text as (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def types(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


@pytest.mark.usefixtures("use_db")
def test_collector_exports_last_value_threshold_and_firing_per_rule() -> None:
    store = AlertStore(open_stores())
    store.save_rule(
        AlertRule(
            "p99-high",
            "latency_p99_ms",
            ">",
            250,
            severity="critical",
            labels={"endpoint": "churn"},
        )
    )
    store.save_rule(AlertRule("drift", "drift_share", ">", 0.3, category="model_quality"))
    store.evaluate({"latency_p99_ms": 400.0}, labels={"endpoint": "churn"}, now=1_700_000_000.5)

    registry = CollectorRegistry()
    registry.register(MonitorCollector(store))
    text = generate_latest(registry).decode()
    assert types(text) == {
        "loopstack_monitor_value": "gauge",
        "loopstack_monitor_threshold": "gauge",
        "loopstack_monitor_last_evaluated_timestamp_seconds": "gauge",
        "loopstack_monitor_alert_firing": "gauge",
    }
    p99 = {("rule", "p99-high"), ("metric", "latency_p99_ms"), ("endpoint", "churn")}
    drift = {("rule", "drift"), ("metric", "drift_share")}
    assert samples(text) == {
        ("loopstack_monitor_value", frozenset(p99)): 400.0,
        ("loopstack_monitor_threshold", frozenset(p99)): 250.0,
        ("loopstack_monitor_threshold", frozenset(drift)): 0.3,
        ("loopstack_monitor_last_evaluated_timestamp_seconds", frozenset(p99)): 1_700_000_000.5,
        (
            "loopstack_monitor_alert_firing",
            frozenset(p99 | {("severity", "critical"), ("category", "infrastructure")}),
        ): 1.0,
        (
            "loopstack_monitor_alert_firing",
            frozenset(drift | {("severity", "warning"), ("category", "model_quality")}),
        ): 0.0,
    }

    # read at scrape time: the next window's value and the resolution show at once
    store.evaluate({"latency_p99_ms": 120.0}, labels={"endpoint": "churn"})
    got = samples(generate_latest(registry).decode())
    assert got["loopstack_monitor_value", frozenset(p99)] == 120.0
    firing = frozenset(p99 | {("severity", "critical"), ("category", "infrastructure")})
    assert got["loopstack_monitor_alert_firing", firing] == 0.0

    store.delete_rule("p99-high")
    assert not [
        k for k in samples(generate_latest(registry).decode()) if ("rule", "p99-high") in k[1]
    ]


def test_no_rules_no_samples_and_projects_apart() -> None:
    stores = open_stores()
    assert samples(monitor_metrics(stores).decode()) == {}
    AlertStore(stores, project_id=7).save_rule(AlertRule("acc", "accuracy", "<", 0.8))
    assert samples(monitor_metrics(stores).decode()) == {}  # project 0 sees none of 7's
    got = samples(monitor_metrics(stores, project_id=7).decode())
    assert (
        got[("loopstack_monitor_threshold", frozenset({("rule", "acc"), ("metric", "accuracy")}))]
        == 0.8
    )


def test_reserved_or_repeated_rule_labels_are_left_out() -> None:
    store = AlertStore(open_stores())
    store.save_rule(
        AlertRule("r", "m", ">", 1, labels={"__name__": "x", "rule": "other", "model": "iris"})
    )
    got = samples(monitor_metrics(open_stores()).decode())
    assert (
        "loopstack_monitor_threshold",
        frozenset({("rule", "r"), ("metric", "m"), ("model", "iris")}),
    ) in got


def test_server_metrics_carries_the_monitor_gauges() -> None:
    store = AlertStore(open_stores())
    store.save_rule(AlertRule("acc-low", "accuracy", "<", 0.8, category="model_quality"))
    store.evaluate({"accuracy": 0.71})
    with ThreadedServer(create_app()) as server:
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
    got = samples(text)
    assert (
        got[("loopstack_monitor_value", frozenset({("rule", "acc-low"), ("metric", "accuracy")}))]
        == 0.71
    )
    health = {("method", "GET"), ("route", "/health"), ("status", "200")}
    assert got[("loopstack_http_requests_total", frozenset(health))] == 1.0


def test_server_metrics_shows_only_the_callers_project(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopstack import auth

    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = open_stores().db
    root = auth.create_token(db, name="root", user="root")[0]
    fraud = auth.create_project(db, "fraud", actor="root")
    auth.create_user(db, "vic", actor="root")
    auth.add_member(db, "default", "vic", "viewer", actor="root")
    vic = auth.create_token(db, name="vic", user="vic", actor="root")[0]
    scoped = auth.create_token(db, name="f", user="root", project="fraud", actor="root")[0]
    AlertStore(open_stores()).save_rule(AlertRule("default-rule", "accuracy", "<", 0.8))
    AlertStore(open_stores(), project_id=fraud.project_id).save_rule(
        AlertRule("fraud-rule", "accuracy", "<", 0.9)
    )

    def rules(headers: dict[str, str]) -> set[str]:
        r = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        return {dict(labels)["rule"] for name, labels in samples(r.text) if "monitor" in name}

    with ThreadedServer(create_app()) as server:
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 401
        assert rules({"Authorization": f"Bearer {vic}"}) == {"default-rule"}
        assert rules({"Authorization": f"Bearer {scoped}"}) == {"fraud-rule"}
        as_root = {"Authorization": f"Bearer {root}"}
        assert rules({**as_root, "X-Loopstack-Project": "fraud"}) == {"fraud-rule"}
        # vic is no member of fraud: refused, not shown fraud's rules
        r = httpx.get(
            f"{server.url}/metrics",
            headers={"Authorization": f"Bearer {vic}", "X-Loopstack-Project": "fraud"},
            timeout=10,
        )
        assert r.status_code in (403, 404) and "fraud-rule" not in r.text
