"""`loopstack monitor`: alert incidents, rules with their last evaluation, rule changes,
and an endpoint's report written as HTML or JSON; errors in one line."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from rich.cells import cell_len
from typer.testing import CliRunner

from loopstack.cli import app
from loopstack.monitoring import AlertRule, AlertStore, MonitoringReport
from loopstack.store import audit, open_stores
from loopstack.store.events import EventLog


def run(*args: str, width: int = 80) -> Any:  # click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})


def ok(*args: str, width: int = 80) -> str:
    result = run(*args, width=width)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def fits(text: str, width: int = 80) -> bool:
    return all(cell_len(line) <= width for line in text.splitlines())


def test_rules_are_added_listed_with_their_last_evaluation_and_removed() -> None:
    assert ok("monitor", "rules").strip() == "No alert rules"
    out = ok(
        "monitor", "rules", "add", "accuracy-low-on-the-churn-endpoint", "--metric", "accuracy",
        "--comparison", "<", "--threshold", "0.85", "--severity", "critical",
        "--label", "endpoint=churn", "--for-windows", "2",
    )  # fmt: skip
    assert "saved rule accuracy-low-on-the-churn-endpoint: accuracy < 0.85 (critical)" in out
    ok("monitor", "rules", "add", "p99", "--metric", "latency_p99_ms", "--comparison", ">",
       "--threshold", "250", "--category", "infrastructure")  # fmt: skip
    store = AlertStore(open_stores())
    rule = store.get_rule("accuracy-low-on-the-churn-endpoint")
    assert rule.labels == {"endpoint": "churn"} and rule.for_windows == 2
    store.evaluate({"latency_p99_ms": 400.0}, now=time.time())
    table = ok("monitor", "rules")
    assert fits(table), table
    rows = [line for line in table.splitlines() if line.startswith("│")]
    assert len(rows) == 2 and rows[0].startswith("│ accuracy-low") and " ok " in rows[0]
    assert rows[1].startswith("│ p99 ") and "firing" in rows[1] and "400" in rows[1]
    wide = ok("monitor", "rules", "--wide", width=200)
    assert "accuracy < 0.85" in wide and "endpoint=churn" in wide
    listed = json.loads(ok("monitor", "rules", "--json"))
    assert [(r["name"], r["state"], r["last_value"]) for r in listed] == [
        ("accuracy-low-on-the-churn-endpoint", "ok", None),
        ("p99", "firing", 400.0),
    ]
    assert "removed rule p99" in ok("monitor", "rules", "remove", "p99")
    assert [r.name for r in store.list_rules()] == ["accuracy-low-on-the-churn-endpoint"]
    actions = [e["action"] for e in audit.events(open_stores().db, object_type="alert_rule")]
    assert actions == ["alert_rule.save", "alert_rule.save", "alert_rule.delete"]


def test_bad_rule_input_is_one_line_naming_what_was_expected() -> None:
    bad = run("monitor", "rules", "add", "r", "--metric", "m", "--comparison", "!=",
              "--threshold", "1")  # fmt: skip
    assert bad.exit_code == 1 and "one of >, >=, <, <=" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = run("monitor", "rules", "add", "r", "--metric", "m", "--comparison", ">",
              "--threshold", "1", "--label", "endpoint")  # fmt: skip
    assert bad.exit_code == 1 and "KEY=VALUE" in bad.stderr
    gone = run("monitor", "rules", "remove", "nope")
    assert gone.exit_code == 1 and "no alert rule named 'nope'" in gone.stderr


def test_alerts_lists_incidents_by_state_and_endpoint() -> None:
    store = AlertStore(open_stores())
    store.save_rule(AlertRule("acc", "accuracy", "<", 0.85, labels={"endpoint": "churn"}))
    store.save_rule(AlertRule("fraud-acc", "accuracy", "<", 0.85, labels={"endpoint": "fraud"}))
    t0 = time.time() - 600
    for i, acc in enumerate([0.8, 0.9, 0.7]):
        for endpoint in ("churn", "fraud"):
            store.evaluate({"accuracy": acc}, labels={"endpoint": endpoint}, now=t0 + i * 60)
    every = json.loads(ok("monitor", "alerts", "--json"))
    assert [(a["rule"], a["state"]) for a in every] == [
        ("acc", "resolved"),
        ("fraud-acc", "resolved"),
        ("acc", "firing"),
        ("fraud-acc", "firing"),
    ]
    churn = json.loads(
        ok("monitor", "alerts", "--endpoint", "churn", "--state", "firing", "--json")
    )
    assert [(a["rule"], a["state"], a["value"]) for a in churn] == [("acc", "firing", 0.7)]
    assert len(json.loads(ok("monitor", "alerts", "--limit", "1", "--json"))) == 1
    table = ok("monitor", "alerts")
    assert fits(table) and "firing" in table and "resolved" in table, table
    bad = run("monitor", "alerts", "--state", "open")
    assert bad.exit_code == 1 and "firing, resolved or all" in bad.stderr


def test_report_writes_html_and_json_from_the_log_and_a_reference(tmp_path: Path) -> None:
    from loopstack.serving._prediction_log import predictions_schema

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"amount": rng.normal(0, 1, 800), "plan": rng.choice(["a", "b"], 800)})
    cur = pd.DataFrame({"amount": rng.normal(1, 1, 400), "plan": rng.choice(["a", "b"], 400)})
    ref.to_parquet(tmp_path / "train.parquet")
    now = time.time()
    rows = cur.to_dict("records")
    table = pa.Table.from_pylist(
        [
            {"ts": dt.datetime.fromtimestamp(now - 7200 + i, tz=dt.UTC), "request_id": f"r{i}",
             "endpoint": "churn", "model_version": "churn/1", "arm": None,
             "inputs": json.dumps(rows[i * 4 : i * 4 + 4]), "features": None,
             "output": json.dumps({"predict": [0] * len(rows[i * 4 : i * 4 + 4])}),
             "latency_ms": 2.0, "shadow": False}
            for i in range(100)
        ],
        schema=predictions_schema(),
    )  # fmt: skip
    EventLog(open_stores()).append("predictions", table)
    out = tmp_path / "churn.html"
    said = ok("monitor", "report", "churn", "--window", "1d", "--reference",
              str(tmp_path / "train.parquet"), "--out", str(out))  # fmt: skip
    assert "100 request(s)" in said and "1 of 2 columns drifted" in said, said
    html = out.read_text()
    assert "<svg" in html and "amount: reference against current distribution" in html
    train, as_json = str(tmp_path / "train.parquet"), str(tmp_path / "r.json")
    ok("monitor", "report", "churn", "--reference", train, "--out", as_json, "--format", "json")
    back = MonitoringReport.from_dict(json.loads((tmp_path / "r.json").read_text()))
    assert back.drift is not None and back.drift.drifted_columns == ["amount"]
    assert sum(v["rows"] for v in back.volume) == 400
    ok("monitor", "report", "churn", "--out", str(tmp_path / "plain.html"))
    assert "Drift" not in (tmp_path / "plain.html").read_text()
    bad = run("monitor", "report", "churn", "--window", "soon", "--out", str(tmp_path / "x"))
    assert bad.exit_code == 1 and "a window must be" in bad.stderr
    bad = run("monitor", "report", "churn", "--format", "pdf")
    assert bad.exit_code == 1 and "html or json" in bad.stderr
    bad = run("monitor", "report", "churn", "--reference", str(tmp_path / "none.parquet"))
    assert bad.exit_code == 1 and "no reference file at" in bad.stderr


def test_through_a_server_the_commands_say_they_need_a_local_store() -> None:
    result = CliRunner().invoke(
        app, ["monitor", "rules"], env={"LOOPSTACK_TRACKING_URI": "http://127.0.0.1:1"}
    )
    assert result.exit_code == 1 and "local metadata store" in result.stderr
    assert "Traceback" not in result.output


def test_every_option_is_whole_in_help_at_80_columns() -> None:
    text = ok("monitor", "rules", "--help")  # a group: the leaf-walking test misses it
    for opt in ("--json", "--csv", "--wide", "--columns"):
        assert opt in text, text
    text = ok("monitor", "report", "--help")
    for opt in ("--window", "--out", "--format", "--reference", "--model-version", "--current"):
        assert opt in text, text
