"""A deployment's live traffic on its page, end to end: two iris models registered, a
deployment serving version 1 with version 2 as a shadow, served in this process
(``create_serving_app`` writing the real prediction log), real predictions sent to it
and one that fails (a column missing: a 422). Chromium opens the deployment's page on a
tracking server over the same home: the totals and the charts show both versions, the
error, and the shadow agreement that the two models' own predictions give; new traffic
appears at the next refresh, and the refreshing stops once the page is left. The
screenshot goes under ``tmp_path``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from tests.conftest import ThreadedServer
from tests.serving.conftest import eventually

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REQUESTS = 12
ROWS = 5


def _shown_pct(value: float) -> str:
    return f"{round(value * 10000) / 100:g} %"


def test_the_live_charts_show_each_version_its_errors_and_the_shadow_agreement(
    chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from loopstack.server import create_app, create_serving_app
    from loopstack.serving import DeploymentSource, ServingRuntime, deployments

    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = pd.DataFrame(X)
    models = []
    with ls.start_run(experiment="live") as run:
        for c in (1.0, 0.01):  # a weak second model: it disagrees on some rows
            model = LogisticRegression(C=c, max_iter=300).fit(frame, y)
            run.log_model(model, name="churn", artifact_path=f"m{c}", sample_input=frame.head(3))
            models.append(model)
    store = deployments()
    store.create("churn-api", "churn/1")
    store.shadow("churn-api", "churn/2")
    # rows from across the classes, so the two models agree on some and not on others
    batches = [frame.iloc[i::REQUESTS].head(ROWS) for i in range(REQUESTS)]
    sent = pd.concat(batches)
    agreement = float(np.mean(models[0].predict(sent) == models[1].predict(sent)))
    assert 0 < agreement < 1

    runtime = ServingRuntime([])
    serving = create_serving_app(
        runtime, refresh_s=0.1, deployments=DeploymentSource(store, ["churn-api"])
    )
    eventually(lambda: runtime.ready and "churn-api" in runtime.deployments, 60)
    try:
        with ThreadedServer(serving) as replica, ThreadedServer(create_app()) as server:

            def predict(records: list[dict]) -> httpx.Response:
                url = f"{replica.url}/endpoints/churn-api/predict"
                return httpx.post(url, json={"records": records}, timeout=30)

            for batch in batches:
                assert predict(batch.to_dict("records")).status_code == 200
            bad = predict([{"sepal length (cm)": 5.0}])  # three columns missing
            assert bad.status_code == 422, bad.text
            live_url = f"{server.url}/api/v1/deployments/churn-api/live"

            def totals() -> dict[tuple[str, bool], dict]:
                doc = httpx.get(live_url, timeout=30).json()
                return {(s["model_version"], s["shadow"]): s["totals"] for s in doc["series"]}

            # the replica flushes its log every second; the shadow copies follow the answers
            eventually(lambda: totals().get(("2", True), {}).get("requests") == REQUESTS, 30)
            got = totals()
            assert (got[("1", False)]["requests"], got[("1", False)]["errors"]) == (13, 1)
            assert got[("2", True)]["agreement"] == pytest.approx(agreement)
            assert got[("2", True)]["compared_rows"] == REQUESTS * ROWS

            page = chromium.new_page(viewport={"width": 1300, "height": 1300})
            page.goto(f"{server.url}/#/deployments/churn-api")
            primary = page.locator("#live-totals tr[data-version='1'][data-shadow='false']")
            expect(primary.locator("td").nth(0)).to_have_text("churn/1")
            expect(primary.locator("td.requests")).to_have_text("13")
            expect(primary.locator("td.errors")).to_have_text("1")
            expect(primary.locator("td.error-rate")).to_have_text(_shown_pct(1 / 13))
            shadow = page.locator("#live-totals tr[data-version='2'][data-shadow='true']")
            expect(shadow.locator("td").nth(0)).to_have_text("churn/2 (shadow)")
            expect(shadow.locator("td.requests")).to_have_text(str(REQUESTS))
            expect(shadow.locator("td.agreement")).to_have_text(
                f"{_shown_pct(agreement)} of {REQUESTS * ROWS} rows"
            )
            charts = page.locator("#live-charts")
            for title in ("requests per minute", "errors per minute", "p50 latency (ms)"):
                lines = charts.locator(f"svg[aria-label='{title}'] .chart-legend")
                expect(lines).to_have_text(["churn/1", "churn/2 (shadow)"])
            agreeing = charts.locator("svg[aria-label='shadow agreement'] .chart-series")
            expect(agreeing).to_have_count(1)
            expect(agreeing).to_have_attribute("data-series", "churn/2 (shadow)")
            # the whole window on the x axis, however few minutes had traffic
            p50 = charts.locator("svg[aria-label='p50 latency (ms)'] .chart-axis text")
            expect(p50.filter(has_text="-50")).to_have_count(1)
            errors = charts.locator("svg[aria-label='errors per minute']")
            expect(errors.locator(".chart-series[data-series='churn/1'] path")).to_have_count(1)
            page.screenshot(path=str(tmp_path / "deployment-live.png"), full_page=True)

            # more traffic: the page shows it at its next refresh, without a reload
            refreshes = int(page.locator("#live").get_attribute("data-refreshes") or 0)
            for batch in batches[:3]:
                assert predict(batch.to_dict("records")).status_code == 200
            expect(primary.locator("td.requests")).to_have_text("16", timeout=25_000)
            assert int(page.locator("#live").get_attribute("data-refreshes") or 0) > refreshes

            # once the page is left, it asks no more
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url) if "/live" in r.url else None)
            page.click("text=Deployments")
            expect(page.locator("#deployments")).to_be_visible()
            time.sleep(11)
            assert asked == []
    finally:
        serving.state.stop_refresh.set()
