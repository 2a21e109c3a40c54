"""Triggers: validated at definition (a missing pipeline is refused), persisted with
what they have seen, each kind fires once per event and never again, across restarts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import Conflict, Invalid, NotFound
from loopstack.loop import Controller, Trigger, TriggerStore, loop_status
from loopstack.store import open_stores
from tests.loop._launch import Launcher, pipeline_file


@pytest.fixture
def entry(tmp_path: Path) -> str:
    return pipeline_file(tmp_path)


def test_a_trigger_pointing_at_a_missing_pipeline_is_refused_at_definition(
    use_db: str, tmp_path: Path, entry: str
) -> None:
    store = TriggerStore(open_stores(), actor="alice")
    cases = {
        f"{tmp_path}/nope.py:training": "does not exist",
        "no_such_package_xyz.jobs:training": "no_such_package_xyz",
        entry.replace(":training", ":trainnig"): "trainnig",
        "json:__doc__": "pipeline",
    }
    for pipeline, says in cases.items():
        with pytest.raises(Invalid, match=says):
            store.add(Trigger("t", "manual", pipeline))
    with pytest.raises(Invalid, match="an entrypoint like 'pkg.module:training'"):
        Trigger("t", "manual", "just_a_module")
    assert store.list() == []  # nothing was stored
    ok = store.add(Trigger("t", "manual", entry, params={"rows": 10}))
    assert ok.trigger.params == {"rows": 10} and ok.enabled and ok.created_by == "alice"
    with pytest.raises(Conflict, match="'t' exists already"):
        store.add(Trigger("t", "manual", entry))


@pytest.mark.parametrize(
    ("kind", "spec", "says"),
    [
        ("weekly", {}, "kind must be one of cron, dataset, drift"),
        ("cron", {}, "needs 'schedule'"),
        ("cron", {"schedule": "* * *"}, "needs 5 fields"),
        ("cron", {"schedule": "* * * * *", "tz": "CET"}, "takes schedule; got 'tz'"),
        ("drift", {"endpoint": "fraud", "above": "high"}, "'above' must be a finite number"),
        ("drift", {"endpoint": "fraud", "above": 0.3, "window": "soon"}, "a window must be"),
        ("performance", {"endpoint": "fraud"}, "needs 'below'"),
        ("kpi", {"kpi": "", "below": 1}, "'kpi' must be non-empty text"),
        ("alert", {}, "needs 'rule'"),
        ("manual", {"x": 1}, "takes nothing"),
    ],
)
def test_bad_specs_are_refused_saying_what_was_expected(
    kind: str, spec: dict, says: str, entry: str
) -> None:
    with pytest.raises(Invalid, match=says):
        Trigger("t", kind, entry, spec=spec)


def test_params_must_be_json_values(entry: str) -> None:
    with pytest.raises(Invalid, match="the params must be JSON values"):
        Trigger("t", "manual", entry, params={"when": dt.datetime.now()})
    with pytest.raises(Invalid, match="the params must be a mapping"):
        Trigger("t", "manual", entry, params=[1, 2])  # type: ignore[arg-type]


def test_defaults_are_filled_in(entry: str) -> None:
    t = Trigger("d", "drift", entry, spec={"endpoint": "fraud", "above": 0.3})
    assert t.spec == {
        "endpoint": "fraud",
        "above": 0.3,
        "metric": "drift_share",
        "window": "1h",
        "reference": None,
        "cooldown": None,  # none: each window over the threshold fires
    }


def _controller(launch: Launcher) -> Controller:
    return Controller(open_stores(), launch=launch, interval_s=0.01, lease_ttl_s=30)


def test_cron_fires_once_per_scheduled_minute_and_survives_a_restart(
    use_db: str, entry: str
) -> None:
    store = TriggerStore(open_stores())
    store.add(
        Trigger("every5", "cron", entry, params={"lr": 0.1}, spec={"schedule": "*/5 * * * *"})
    )
    launch = Launcher()
    base = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(hours=1)
    base = base.replace(minute=0)
    c = _controller(launch)
    c.step(base.timestamp() + 30)  # 00:00 fires
    c.step(base.timestamp() + 200)  # 00:00 again: nothing
    assert launch.calls == [(entry, {"lr": 0.1})]
    c.release()
    restarted = _controller(launch)  # a new controller process: state is in the DB
    restarted.step(base.timestamp() + 250)
    assert len(launch.calls) == 1
    restarted.step(base.timestamp() + 3 * 3600)  # down for hours: the latest tick, once
    restarted.step(base.timestamp() + 3 * 3600 + 10)
    assert len(launch.calls) == 2
    shown = loop_status(open_stores())
    assert [f.dedup_key for f in shown] == [
        (base + dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%MZ"),
        base.strftime("%Y-%m-%dT%H:%MZ"),
    ]
    assert all(f.status == "done" and f.pipeline_run_uuid for f in shown)
    assert "schedule '*/5 * * * *' at" in shown[0].reason


def test_dataset_fires_once_per_new_version_not_for_versions_before_it(
    use_db: str, entry: str
) -> None:
    ls.register_dataset("transactions", pd.DataFrame({"a": [1, 2]}))
    TriggerStore(open_stores()).add(
        Trigger("fresh", "dataset", entry, spec={"dataset": "transactions"})
    )
    launch = Launcher()
    c = _controller(launch)
    c.step()
    assert launch.calls == []  # version 1 was there before the trigger
    ls.register_dataset("transactions", pd.DataFrame({"a": [1, 2, 3]}))
    ls.register_dataset("transactions", pd.DataFrame({"a": [1, 2, 3, 4]}))
    ls.register_dataset("transactions", pd.DataFrame({"a": [1, 2, 3, 4]}))  # same content
    c.step()
    c.step()
    _controller(launch).step()  # another controller after a restart (c still holds: idle)
    c.release()
    _controller(launch).step()
    assert len(launch.calls) == 2
    reasons = [f.reason for f in loop_status(open_stores())]
    assert reasons == [
        "dataset 'transactions' version 3 registered",
        "dataset 'transactions' version 2 registered",
    ]
    assert TriggerStore(open_stores()).get("fresh").state == {"last_version": 3}


def test_manual_fires_once_per_request_and_a_disabled_trigger_is_not_evaluated(
    use_db: str, entry: str
) -> None:
    store = TriggerStore(open_stores(), actor="bob")
    store.add(Trigger("by-hand", "manual", entry))
    store.add(Trigger("off", "cron", entry, spec={"schedule": "* * * * *"}))
    store.disable("off")
    first = store.fire_manual("by-hand", "new labels came", request_id="req-1")
    assert first is not None
    assert store.fire_manual("by-hand", "retried", request_id="req-1") is None
    launch = Launcher()
    c = _controller(launch)
    c.step(dt.datetime.now(dt.UTC).timestamp() + 600)
    c.step(dt.datetime.now(dt.UTC).timestamp() + 1200)
    assert len(launch.calls) == 1
    (view,) = loop_status(open_stores())
    assert (view.trigger, view.reason, view.status) == ("by-hand", "new labels came", "done")
    assert view.dedup_key == "manual-req-1"
    with pytest.raises(NotFound, match="no trigger named 'ghost'"):
        store.fire_manual("ghost")
    assert store.enable("off").enabled
    store.remove("by-hand")
    assert [t.name for t in store.list()] == ["off"]
    assert loop_status(open_stores()) == []


def test_trigger_changes_are_audited(use_db: str, entry: str) -> None:
    from loopstack.store.audit_log import open_audit_log

    store = TriggerStore(open_stores(), actor="carol")
    store.add(Trigger("a", "manual", entry))
    store.fire_manual("a")
    Controller(open_stores(), launch=Launcher()).step()
    store.remove("a")
    actions = [e["action"] for e in open_audit_log().events(object_type=None)]
    for action in (
        "loop.trigger.add",
        "loop.firing.record",
        "loop.firing.claim",
        "loop.firing.launch",
        "loop.firing.done",
        "loop.trigger.remove",
    ):
        assert action in actions, actions
