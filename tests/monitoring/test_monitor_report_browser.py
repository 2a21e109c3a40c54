"""A generated report opened in a real headless Chromium (Debian's, driven by Playwright):
every chart draws (a non-empty box and visible marks), nothing is fetched but the file
itself, no console error. Skipped without Chromium or Playwright, except under CI
(``.ci/run`` installs Chromium), where a missing one fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.monitoring.test_monitor_report import full_report

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(what)
    pytest.skip(what)


def test_every_chart_draws_offline_in_headless_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -r requirements-test.txt)")
    report = full_report(n_features=8)
    path = report.write(tmp_path / "report.html")
    url = path.resolve().as_uri()
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(
                "**/*",
                lambda route: route.continue_() if route.request.url == url else route.abort(),
            )
            page.goto(url, wait_until="load")
            charts = page.evaluate(
                """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
                    const box = svg.getBoundingClientRect();
                    const marks = Array.from(svg.querySelectorAll('rect, path')).filter(m => {
                        const b = m.getBoundingClientRect();
                        return b.width > 0 && b.height > 0;
                    });
                    const title = svg.querySelector('title');
                    return {label: svg.getAttribute('aria-label'),
                            title: title ? title.textContent : null,
                            width: box.width, height: box.height, marks: marks.length};
                })"""
            )
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert requests == [url], requests
    assert errors == [], errors
    n_ok = sum(c.status == "ok" for c in report.drift.columns) if report.drift else 0
    # a chart per feature, an effect bar per compared column, accuracy, a KPI, volume
    assert len(charts) == len(report.distributions) + n_ok + 3, [c["label"] for c in charts]
    for chart in charts:
        assert chart["label"] and chart["title"] == chart["label"], chart
        assert chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["marks"] >= 1, chart
    # the axis, a line and its legend; for accuracy also the band and 4 realised points
    for label, least in (("accuracy over time", 9), ("KPI conversions over time", 3)):
        drawn = next(c for c in charts if c["label"] == label)
        assert drawn["marks"] >= least, drawn
    histograms = [c for c in charts if "reference against current" in c["label"]]
    assert len(histograms) == len(report.distributions)
    assert all(c["marks"] >= 3 for c in histograms), histograms
    assert (tmp_path / "report.png").stat().st_size > 10_000
