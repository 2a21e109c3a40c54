"""An endpoint's monitoring page end to end: predictions of a deployment written to the
prediction log with one feature shifted, its model version trained on a registered
dataset (the reference), an alert firing; Chromium opens the page from the
deployment's and finds the shifted feature first in the drift table, its distribution
drawn (reference and current as SVG paths) and the alert listed. The screenshot goes
under ``tmp_path``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ThreadedServer
from tests.monitoring.test_monitor_report import _predictions

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _frame(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n).round(1),
            "amount": rng.normal(100 + shift * 20, 20, n).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def test_the_drift_report_lists_the_shifted_feature_first_and_draws_it(
    chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    import loopstack as ls
    from loopstack.monitoring import AlertRule, AlertStore
    from loopstack.server import create_app
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog

    reference, current = _frame(1000, 0.0, 1), _frame(600, 1.5, 2)
    training = ls.register_dataset("churn-train", reference)
    with ls.start_run(experiment="churn") as run:
        run.log_input(training, context="training")
    ls.get_registry().create_model_version(
        "churn", source=f"runs:/{run.run_id}/model", files={"m": "ab" * 32}, run_id=run.run_id
    )
    ls.deployments().create("churn-api", "churn/1")
    stores = open_stores()
    now = time.time()
    rows = current.to_dict("records")
    EventLog(stores).append("predictions", _predictions("churn-api", rows, now - 3 * 3600))
    alerts = AlertStore(stores)
    alerts.save_rule(AlertRule("p99", "latency_p99_ms", ">", 250))
    alerts.evaluate({"latency_p99_ms": 400.0}, labels={"endpoint": "churn-api"}, now=now - 60)

    with ThreadedServer(create_app()) as server:
        answer = httpx.get(f"{server.url}/api/v1/monitoring/churn-api/report", timeout=60)
        assert answer.status_code == 200, answer.text
        drifted = {c["column"] for c in answer.json()["drift"]["columns"] if c["drifted"]}
        assert "amount" in drifted and "age" not in drifted
        missing = httpx.get(f"{server.url}/api/v1/monitoring/nowhere/report", timeout=60)
        assert missing.status_code == 404 and "nowhere" in missing.json()["message"]

        page = chromium.new_page(viewport={"width": 1300, "height": 1100})
        page.goto(f"{server.url}/#/deployments/churn-api")
        page.click("text=drift and alerts")
        expect(page.locator("h1")).to_have_text("Monitoring of churn-api")
        expect(page.locator("#reference")).to_contain_text(
            f"{training.name}/{training.version} (the training data of churn/1)"
        )
        expect(page.locator("#traffic")).to_have_text("60 requests, 600 rows")
        table = page.locator("#drift-table tbody tr")
        expect(table).to_have_count(3)
        first = table.nth(0)
        expect(first).to_have_attribute("data-column", "amount")
        expect(first.locator("td").nth(2)).to_have_text("drifted")
        expect(page.locator("tr[data-column='age'] td").nth(2)).to_have_text("no drift")
        # its distribution first: the reference and the current, a path each
        plot = page.locator("#distributions .distribution").nth(0)
        expect(plot).to_have_attribute("data-column", "amount")
        assert plot.locator("svg.chart path").count() == 2
        assert plot.locator(".chart-legend").all_text_contents() == ["reference", "current"]
        expect(page.locator("#distributions figure[aria-label='plan'] tbody tr")).to_have_count(3)
        expect(page.locator("#alerts tr[data-rule='p99'] td").nth(1)).to_have_text("firing")
        # the traffic over time: a marker per bucket of the volume
        requests = page.locator("#over-time svg.chart[aria-label='requests']")
        expect(requests).to_have_count(1)
        assert requests.locator("circle").count() == len(answer.json()["volume"]) >= 1
        page.screenshot(path=str(tmp_path / "monitoring.png"), full_page=True)

        # a window before the predictions: nothing to compare, the page says why
        page.select_option("#window", "1h")
        expect(page.locator("#no-drift")).to_contain_text("no predictions of endpoint 'churn-api'")
