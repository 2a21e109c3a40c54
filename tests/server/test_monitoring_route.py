"""GET /api/v1/monitoring/{endpoint}/report: the reference it compares the window with
(the training data of the version the deployment serves, or of ``model_version``), what
it says when there is none, and its errors (no such deployment, a bad window, a version
without training data asked for by name)."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pandas as pd

import loopstack as ls
from loopstack.store import open_stores
from loopstack.store.events import EventLog
from tests.monitoring.test_monitor_report import _predictions


def test_the_report_compares_the_window_with_the_served_versions_training_data(
    http: httpx.Client,
) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 500), "y": rng.normal(0, 1, 500)})
    # x shifted by two standard deviations; y a sample of the reference's own values
    current = pd.DataFrame({"x": rng.normal(2, 1, 300), "y": rng.permutation(reference["y"])[:300]})
    training = ls.register_dataset("train", reference)
    with ls.start_run(experiment="e") as run:
        run.log_input(training, context="training")
    reg = ls.get_registry()
    reg.create_model_version("churn", source="runs:/x/m", files={"m": "ab" * 32}, run_id=run.run_id)
    reg.create_model_version("churn", source="runs:/x/m", files={"m": "cd" * 32})
    deployments = ls.deployments()
    deployments.create("api", "churn/1")
    log = EventLog(open_stores())
    log.append("predictions", _predictions("api", current.to_dict("records"), time.time() - 7200))

    got = http.get("/api/v1/monitoring/api/report", params={"window": "1d"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["reference"] == {"model_version": "churn/1", "dataset": "train/1"}
    assert body["reference_note"] == ""
    assert [c["column"] for c in body["drift"]["columns"] if c["drifted"]] == ["x"]
    assert {d["column"] for d in body["distributions"]} == {"x", "y"}
    assert sum(v["rows"] for v in body["volume"]) == 300

    # a window with no predictions: the rest of the report, and why there is no drift
    quiet = http.get("/api/v1/monitoring/api/report", params={"window": "1m"}).json()
    assert quiet["drift"] is None and quiet["reference"] is None
    assert "no predictions of endpoint 'api'" in quiet["reference_note"]

    # the served version names no training data: said, not an error; asked for, a 404
    deployments.set("api", "churn/2")
    served = http.get("/api/v1/monitoring/api/report", params={"window": "1d"}).json()
    assert served["drift"] is None
    assert "churn/2 names no training dataset" in served["reference_note"]
    asked = http.get("/api/v1/monitoring/api/report", params={"model_version": "churn/2"})
    assert asked.status_code == 404 and "churn/2" in asked.json()["message"]
    by_name = http.get("/api/v1/monitoring/api/report", params={"model_version": "churn/1"})
    assert by_name.json()["reference"]["model_version"] == "churn/1"

    bad = http.get("/api/v1/monitoring/api/report", params={"model_version": "churn"})
    assert bad.status_code == 422 and "NAME/VERSION" in bad.json()["message"]
    window = http.get("/api/v1/monitoring/api/report", params={"window": "soon"})
    assert window.status_code == 422
    missing = http.get("/api/v1/monitoring/nowhere/report")
    assert missing.status_code == 404 and "nowhere" in missing.json()["message"]
