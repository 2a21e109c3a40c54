"""MonitoringReport: plain data that round-trips through JSON, one self-contained HTML
file with a chart per feature and series, Jupyter rendering; build_report over the
stored alert history and prediction log."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import loopstack as ls
from loopstack.errors import NotFound
from loopstack.monitoring import (
    AlertRule,
    AlertStore,
    FeatureDistribution,
    MonitoringReport,
    alert_incidents,
    build_report,
    drift,
    feature_distributions,
    parse_window,
)
from loopstack.store import open_stores
from loopstack.store.events import EventLog

T0 = 1_764_000_000.0  # a fixed instant (2025-11-24)
DAY = 86400.0


def frames(n_features: int = 6, shift: int = 2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference and a current frame; the first ``shift`` numeric columns moved."""
    rng = np.random.default_rng(seed)
    ref = {f"x{i}": rng.normal(0, 1, 3000) for i in range(n_features)}
    cur = {f"x{i}": rng.normal(0.6 if i < shift else 0, 1, 2000) for i in range(n_features)}
    ref["plan"] = rng.choice(["basic", "pro", "<b>team</b>"], 3000, p=[0.6, 0.3, 0.1])
    cur["plan"] = rng.choice(["basic", "pro", "<b>team</b>"], 2000, p=[0.3, 0.3, 0.4])
    return pd.DataFrame(ref), pd.DataFrame(cur)


def series(days: int = 7) -> dict[str, list[dict]]:
    """Performance, estimate, KPI and volume series computed from simple generated data."""
    rng = np.random.default_rng(1)
    perf, est, kpis, volume = [], [], [], []
    for d in range(days):
        start = T0 + d * DAY
        labels = rng.integers(0, 2, 500)
        flip = rng.random(500) < 0.1 + 0.02 * d  # the model worsens day by day
        predictions = np.where(flip, 1 - labels, labels)
        accuracy = float((predictions == labels).mean())
        perf.append(
            {
                "window_start": start,
                "segment": None,
                "metric": "accuracy",
                "value": accuracy,
                "n": 500,
                "label_coverage": 1.0 if d < 4 else 0.0,
            }
        )
        half = 1.96 * (accuracy * (1 - accuracy) / 500) ** 0.5
        est.append(
            {
                "window_start": start,
                "metric": "accuracy",
                "estimate": accuracy,
                "lower": accuracy - half,
                "upper": accuracy + half,
                "realised": accuracy if d < 4 else None,
            }
        )
        kpis.append({"ts": start, "name": "conversions", "value": float(rng.poisson(40))})
        volume.append({"window_start": start, "requests": 500, "rows": 1500, "errors": d % 2})
    return {"performance": perf, "estimated": est, "kpis": kpis, "volume": volume}


def full_report(n_features: int = 6) -> MonitoringReport:
    ref, cur = frames(n_features)
    q = []
    for column in ref.columns:
        if column == "plan":
            unseen = sorted(set(cur[column]) - set(ref[column]))
            q.append(
                {
                    "column": column,
                    "null_rate": 0.0,
                    "null_rate_reference": 0.0,
                    "out_of_range": None,
                    "unseen": unseen,
                    "issues": [],
                }
            )
            continue
        lo, hi = ref[column].min(), ref[column].max()
        out = float(((cur[column] < lo) | (cur[column] > hi)).mean())
        q.append({"column": column, "null_rate": float(cur[column].isna().mean()),
                  "null_rate_reference": float(ref[column].isna().mean()),
                  "out_of_range": out, "unseen": [],
                  "issues": ["out of range"] if out > 0.001 else []})  # fmt: skip
    return MonitoringReport(
        "churn <api>",
        T0,
        T0 + 7 * DAY,
        generated_at=T0 + 7 * DAY + 60,
        drift=drift(ref, cur),
        distributions=feature_distributions(ref, cur),
        quality=q,
        alerts=[
            {
                "rule": "acc-low",
                "severity": "critical",
                "state": "firing",
                "first_seen": T0 + 5 * DAY,
                "last_seen": T0 + 7 * DAY,
                "message": "accuracy < 0.85: value 0.82 & <falling>",
            },
        ],  # fmt: skip
        **series(),
    )


def test_the_report_round_trips_through_json() -> None:
    report = full_report()
    text = report.to_json()
    back = MonitoringReport.from_dict(json.loads(text))
    assert back.to_dict() == report.to_dict()
    assert back.drift is not None and back.drift.drifted_columns == report.drift.drifted_columns
    assert back.window_start == dt.datetime.fromtimestamp(T0, tz=dt.UTC)
    d = json.loads(text)
    assert d["window_start"].endswith("Z") and d["performance"][0]["window_start"].endswith("Z")
    assert d["estimated"][6]["realised"] is None
    with pytest.raises(ls.Invalid, match="unknown monitoring report keys"):
        MonitoringReport.from_dict({**d, "extra": 1})


def test_distributions_share_bins_and_count_every_value() -> None:
    ref, cur = frames()
    ref.loc[:9, "x3"] = np.nan
    dists = {d.column: d for d in feature_distributions(ref, cur, bins=15)}
    x3 = dists["x3"]
    assert x3.kind == "numeric" and len(x3.edges or []) == 16 and len(x3.reference) == 15
    assert sum(x3.reference) == 2990 and x3.nulls_reference == 10 and sum(x3.current) == 2000
    plan = dists["plan"]
    assert plan.kind == "categorical" and set(plan.categories or []) == {
        "basic",
        "pro",
        "<b>team</b>",
    }
    assert sum(plan.reference) == 3000 and sum(plan.current) == 2000
    many = pd.DataFrame({"c": [f"v{i % 30}" for i in range(300)]})
    other = feature_distributions(many, many, max_categories=5)[0]
    assert other.categories[-1] == "(other)" and other.reference[-1] == 250
    with pytest.raises(ls.Invalid, match="needs 3 bin edges"):
        FeatureDistribution("a", "numeric", [1, 2], [1, 2], edges=[0, 1])


def test_html_is_self_contained_escaped_and_has_a_labelled_chart_for_each_feature() -> None:
    report = full_report()
    html = report.to_html()
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"""(src|href)\s*=""", html)
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"] * html.count(
        "<svg"
    )
    # every text escaped: the endpoint's and a category's markup, the alert's ampersand
    assert "<api>" not in html and "churn &lt;api&gt;" in html
    assert "<b>team</b>" not in html and "&lt;b&gt;team&lt;/b&gt;" in html
    assert "0.82 &amp; &lt;falling&gt;" in html
    svgs = re.findall(r"<svg[^>]*>.*?</svg>", html, re.S)
    assert all('role="img"' in s and "aria-label=" in s and "<title>" in s for s in svgs)
    titles = re.findall(r"<title>([^<]*)</title>", html)
    for d in report.distributions:
        assert f"{d.column.replace('<', '&lt;').replace('>', '&gt;')}: reference against " in (
            " ".join(titles)
        )
    assert "accuracy over time" in titles and "KPI conversions over time" in titles
    assert any(t.startswith("volume over time") for t in titles)
    # drifted rows highlighted, one per drifted column, and the table sorted by effect
    assert report.drift is not None
    assert html.count('<tr class="drift">') >= len(report.drift.drifted_columns) > 0
    drift_html = html[html.index("<h2>Drift</h2>") : html.index("<h2>Distributions</h2>")]
    shown = re.findall(r"<tr[^>]*><td>([^<]+)</td>", drift_html)
    effects = {c.column: c.effect_size for c in report.drift.columns}
    ordered = [effects[c.replace("&lt;", "<").replace("&gt;", ">")] for c in shown]
    assert ordered == sorted(ordered, reverse=True)
    # the estimate's interval is a band, realised values are points
    perf = re.search(r'aria-label="accuracy over time".*?</svg>', html, re.S)
    assert perf is not None
    assert perf.group(0).count('class="band"') == 1 and perf.group(0).count('class="point"') == 4


def test_fifty_features_make_a_reasonably_small_file(tmp_path: Path) -> None:
    report = full_report(n_features=50)
    path = report.write(tmp_path / "r.html")
    size = path.stat().st_size
    assert path.read_text().count(": reference against current distribution</title>") == 51
    assert size < 400_000, size
    back = report.write(tmp_path / "r.json", format="json")
    assert MonitoringReport.from_dict(json.loads(back.read_text())).to_dict() == report.to_dict()
    with pytest.raises(ls.Invalid, match="'html' or 'json'"):
        report.write(tmp_path / "r.pdf", format="pdf")


def test_jupyter_renders_the_report_and_a_drift_report_inline() -> None:
    report = full_report()
    body = report._repr_html_()
    assert body.startswith('<div class="lsr">') and "<html" not in body and "<svg" in body
    assert report.drift is not None
    inline = report.drift._repr_html_()
    assert "<table>" in inline and inline.count("<svg") == len(
        [c for c in report.drift.columns if c.status == "ok"]
    )
    assert "<style>" in inline


def test_a_report_refuses_what_is_not_plain_data() -> None:
    with pytest.raises(ls.Invalid, match="'window_start' must be a datetime"):
        MonitoringReport("e", "yesterday", T0)
    with pytest.raises(ls.Invalid, match="'kpis' must be a list of dicts"):
        MonitoringReport("e", T0, T0 + 1, kpis=[1, 2])
    with pytest.raises(ls.Invalid, match="'endpoint' must be a non-empty string"):
        MonitoringReport("", T0, T0 + 1)
    assert parse_window("7d") == 7 * DAY and parse_window("90m") == 5400
    with pytest.raises(ls.Invalid, match="a window must be"):
        parse_window("a week")


def test_incidents_fold_fired_and_resolved_from_the_alert_history() -> None:
    store = AlertStore(open_stores())
    store.save_rule(AlertRule("acc", "accuracy", "<", 0.85, labels={"endpoint": "churn"}))
    store.save_rule(AlertRule("other", "accuracy", "<", 0.85, labels={"endpoint": "fraud"}))
    store.save_rule(AlertRule("p99", "latency_p99_ms", ">", 250))
    for i, (acc, p99) in enumerate([(0.8, 300.0), (0.9, 310.0), (0.8, 100.0)]):
        store.evaluate({"accuracy": acc}, labels={"endpoint": "churn"}, now=T0 + i * 60)
        store.evaluate({"accuracy": acc}, labels={"endpoint": "fraud"}, now=T0 + i * 60)
        store.evaluate({"latency_p99_ms": p99}, now=T0 + i * 60)
    got = alert_incidents(store.history(), endpoint="churn")
    assert [(a["rule"], a["state"], a["first_seen"], a["last_seen"]) for a in got] == [
        ("acc", "resolved", T0, T0 + 60),
        ("p99", "resolved", T0, T0 + 120),
        ("acc", "firing", T0 + 120, T0 + 120),
    ]
    assert got[0]["message"] == "resolved: accuracy < 0.85: value 0.9"
    assert len(alert_incidents(store.history())) == 5


def _predictions(endpoint: str, rows: list[dict], at: float) -> pa.Table:
    from loopstack.serving._prediction_log import predictions_schema

    n = len(rows) // 10
    return pa.Table.from_pylist(
        [
            {
                "ts": dt.datetime.fromtimestamp(at + i * 60, tz=dt.UTC),
                "request_id": f"{endpoint}-{at}-{i}",
                "endpoint": endpoint,
                "model_version": "churn/1",
                "arm": None,
                "inputs": json.dumps(rows[i * 10 : (i + 1) * 10]),
                "features": None,
                "output": json.dumps({"predict": [0] * len(rows[i * 10 : (i + 1) * 10])}),
                "latency_ms": 1.0,
                "shadow": False,
            }
            for i in range(n)
        ],
        schema=predictions_schema(),
    )


def test_build_report_reads_alerts_volume_and_the_logged_inputs(tmp_path: Path) -> None:
    stores = open_stores()
    ref, cur = frames(n_features=3, shift=1)
    ref, cur = ref.head(1000), cur.head(600)
    now = time.time()
    log = EventLog(stores)
    log.append("predictions", _predictions("churn", cur.to_dict("records"), now - 3 * 3600))
    log.append("predictions", _predictions("fraud", ref.to_dict("records"), now - 3 * 3600))
    AlertStore(stores).save_rule(AlertRule("p99", "latency_p99_ms", ">", 250))
    AlertStore(stores).evaluate({"latency_p99_ms": 400.0}, now=now - 60)
    ref.to_parquet(tmp_path / "train.parquet")
    report = build_report("churn", "1d", reference=tmp_path / "train.parquet", stores=stores)
    assert sum(v["requests"] for v in report.volume) == 60
    assert sum(v["rows"] for v in report.volume) == 600
    assert [a["rule"] for a in report.alerts] == ["p99"]
    assert report.drift is not None and report.drift.n_current == 600
    assert report.drift.drifted_columns == drift(ref, cur).drifted_columns
    assert "x0" in report.drift.drifted_columns
    assert {d.column for d in report.distributions} == set(ref.columns)
    quiet = build_report("churn", "1h", stores=stores)  # before the logged predictions
    assert quiet.volume == [] and quiet.drift is None
    with pytest.raises(ls.Invalid, match="no predictions of endpoint 'churn'"):
        build_report("churn", "1h", reference=ref, stores=stores)
    with pytest.raises(ls.Invalid, match="no reference file at"):
        build_report("churn", "1d", reference=tmp_path / "nope.parquet", stores=stores)


def test_build_report_takes_a_model_versions_training_data_as_the_reference() -> None:
    ref, cur = frames(n_features=2, shift=1)
    dv = ls.register_dataset("churn-train", ref.head(500))
    with ls.start_run(experiment="train") as run:
        run.log_input(dv, context="training")
    reg = ls.get_registry()
    reg.create_model_version(
        "churn", source=f"runs:/{run.run_id}/model", files={"m": "ab" * 32}, run_id=run.run_id
    )
    reg.create_model_version("lonely", source="runs:/x/model", files={"m": "ab" * 32})
    report = build_report("churn", "1d", model_version="churn/1", current=cur.head(300))
    assert report.drift is not None and report.drift.n_reference == 500
    assert "x0" in report.drift.drifted_columns
    with pytest.raises(NotFound, match="names no training dataset"):
        build_report("churn", "1d", model_version="lonely/1", current=cur)
