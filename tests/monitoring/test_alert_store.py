"""Alert rules, state and history in the metadata DB, on SQLite and PostgreSQL; every
rule change and every alert fired or resolved is in the audit chain."""

from __future__ import annotations

import pytest

import loopstack as ls
from loopstack.monitoring import AlertRule, AlertStore
from loopstack.store import audit, open_stores

pytestmark = pytest.mark.usefixtures("use_db")


class _Recorder:
    def __init__(self) -> None:
        self.delivered: list[str] = []

    def deliver(self, events):
        self.delivered.extend(f"{e.kind}:{e.rule.name}" for e in events)


def test_rules_are_saved_listed_replaced_and_deleted() -> None:
    store = AlertStore(open_stores(), actor="alice")
    store.save_rule(AlertRule("p99", "latency_p99_ms", ">", 250, labels={"endpoint": "churn"}))
    store.save_rule(AlertRule("acc", "accuracy", "<", 0.8, category="model_quality"))
    assert [r.name for r in store.list_rules()] == ["acc", "p99"]
    store.save_rule(AlertRule("p99", "latency_p99_ms", ">", 300, severity="critical"))
    got = store.get_rule("p99")
    assert got.threshold == 300.0 and got.severity == "critical"
    store.delete_rule("acc")
    assert [r.name for r in store.list_rules()] == ["p99"]
    with pytest.raises(ls.NotFound, match="no alert rule named 'acc'"):
        store.delete_rule("acc")
    with pytest.raises(ls.NotFound):
        store.get_rule("acc")
    actions = [
        (e["actor"], e["action"], e["object_id"])
        for e in audit.events(open_stores().db, object_type="alert_rule")
    ]
    assert actions == [
        ("alice", "alert_rule.save", "p99"),
        ("alice", "alert_rule.save", "acc"),
        ("alice", "alert_rule.save", "p99"),
        ("alice", "alert_rule.delete", "acc"),
    ]


def test_evaluation_keeps_state_across_stores_and_audits_only_fired_and_resolved() -> None:
    rec = _Recorder()
    rule = AlertRule("p99", "latency_p99_ms", ">", 250, for_windows=2, resolve_windows=2)
    AlertStore(open_stores(), actor="ops").save_rule(rule)
    seq_before = audit.head_seq(open_stores().db)
    kinds = []
    for i, v in enumerate([300, 310, 320, 100, 90, 80]):
        # a fresh store object each window: the state lives in the database
        store = AlertStore(open_stores(), actor="ops", router=rec)
        events = store.evaluate({"latency_p99_ms": v, "unrelated": 1.0}, now=1000.0 + 60 * i)
        kinds.append([e.kind for e in events])
    assert kinds == [[], ["fired"], ["deduplicated"], [], ["resolved"], []]
    assert rec.delivered == ["fired:p99", "resolved:p99"]
    assert store.state("p99").firing is False and store.state("p99").clean == 3
    history = store.history()
    assert [(h["kind"], h["value"], h["at"], h["started_at"]) for h in history] == [
        ("fired", 310.0, 1060.0, 1060.0),
        ("resolved", 90.0, 1240.0, 1060.0),
    ]
    assert history[0]["severity"] == "warning" and history[0]["category"] == "infrastructure"
    db = open_stores().db
    alert_events = audit.events(db, object_type="alert")
    assert [e["action"] for e in alert_events] == ["alert.fired", "alert.resolved"]
    assert audit.head_seq(db) == seq_before + 2  # the other four windows left no event
    assert audit.verify(db).ok


def test_history_outlives_the_rule_and_filters_by_rule_and_time() -> None:
    store = AlertStore(open_stores())
    store.save_rule(AlertRule("a", "m", ">", 1))
    store.save_rule(AlertRule("b", "m", "<", 0))
    store.evaluate({"m": 5.0}, now=100.0)
    store.evaluate({"m": -1.0}, now=200.0)  # a resolves, b fires
    store.delete_rule("a")
    assert [(h["rule"], h["kind"]) for h in store.history()] == [
        ("a", "fired"),
        ("a", "resolved"),
        ("b", "fired"),
    ]
    assert [h["kind"] for h in store.history(rule="a")] == ["fired", "resolved"]
    assert [h["rule"] for h in store.history(since=150.0)] == ["a", "b"]
    assert len(store.history(limit=1)) == 1
    with pytest.raises(ls.Invalid, match="'limit'"):
        store.history(limit=0)


def test_changing_a_rules_threshold_restarts_its_state_and_projects_are_apart() -> None:
    store = AlertStore(open_stores())
    store.save_rule(AlertRule("r", "m", ">", 1, for_windows=2))
    store.evaluate({"m": 5.0}, now=0.0)
    assert store.state("r").breaches == 1
    store.save_rule(AlertRule("r", "m", ">", 1, for_windows=2, severity="critical"))
    assert store.state("r").breaches == 1  # severity only: the incident continues
    store.save_rule(AlertRule("r", "m", ">", 2, for_windows=2))
    assert store.state("r").breaches == 0
    other = AlertStore(open_stores(), project_id=7)
    assert other.list_rules() == []
    assert other.evaluate({"m": 5.0}, now=1.0) == []


def test_migration_0012_creates_the_tables_the_schema_declares(use_db: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from loopstack.store.metadata.schema import Base

    db = open_stores().db
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if "alert" in repr(d)]
    assert ours == []


def test_rules_with_labels_step_only_for_their_series() -> None:
    store = AlertStore(open_stores())
    store.save_rule(AlertRule("churn-p99", "p99", ">", 1, labels={"endpoint": "churn"}))
    store.save_rule(AlertRule("fraud-p99", "p99", ">", 1, labels={"endpoint": "fraud"}))
    events = store.evaluate({"p99": 5.0}, labels={"endpoint": "churn"}, now=0.0)
    assert [(e.kind, e.rule.name) for e in events] == [("fired", "churn-p99")]
    assert store.evaluate({"p99": 5.0}, now=60.0) == []  # no series given: no labelled rule
    with pytest.raises(ls.Invalid, match="'labels'"):
        store.evaluate({"p99": 1.0}, labels=["endpoint"])  # type: ignore[arg-type]
