"""The datasets, feature views and audit log pages end to end, over data made through
loopstack's Python API: a dataset registered from a seeded frame in two versions and
validated by a suite with a failing check; two feature views materialized, one with
events older than its TTL; the audit chain those actions wrote, verified, then broken
by an edited row. Chromium opens each page; screenshots go under ``tmp_path``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.conftest import ThreadedServer
from tests.ui.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n).round(1),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
            "churned": rng.random(n) < 0.2,
        }
    )


def _views(now: datetime) -> list[Any]:
    """A driver entity and two views of it: ``trips`` fresh (its newest event 30 minutes
    old, a TTL of a day) and ``ratings`` stale (3 hours old, a TTL of an hour); and an
    on-demand view over ``trips``."""
    from loopstack.features import Entity, FeatureView, Field, OnDemandFeatureView

    driver = Entity("driver", join_keys=["driver_id"])

    def table(age: timedelta, column: str, values: list[Any]) -> pa.Table:
        times = [now - age - timedelta(minutes=10 * i) for i in range(len(values))]
        return pa.table(
            {"driver_id": list(range(1, len(values) + 1)), "event_timestamp": times, column: values}
        )

    trips = FeatureView(
        "trips",
        entities=[driver],
        source=table(timedelta(minutes=30), "trips", [3, 5, 8]),
        ttl=timedelta(days=1),
        schema=[Field("trips", "int64")],
    )
    ratings = FeatureView(
        "ratings",
        entities=[driver],
        source=table(timedelta(hours=3), "rating", [4.5, None, 3.9]),
        ttl=timedelta(hours=1),
        schema=[Field("rating", "float64")],
    )
    doubled = OnDemandFeatureView(
        "doubled", sources=[trips], schema=[Field("doubled", "int64")], udf=_double
    )
    return [driver, trips, ratings, doubled]


def _double(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"doubled": df["trips"] * 2})


def test_a_dataset_version_shows_its_rows_profile_and_failing_check(
    chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    import loopstack as ls
    from loopstack.data import Suite
    from loopstack.server import create_app

    ls.register_dataset("churn", _frame(200, 1))
    dv = ls.register_dataset("churn", _frame(1234, 2), description="the second draw")
    suite = Suite(
        "churn-checks",
        [
            {"type": "row_count", "min": 5000},
            {"type": "null_rate", "column": "age", "max": 0},
            {"type": "allowed_values", "column": "plan", "values": ["basic", "plus", "pro"]},
        ],
    )
    suite.validate(dv)

    with ThreadedServer(create_app()) as server:
        page = chromium.new_page(viewport={"width": 1300, "height": 1200})
        page.goto(f"{server.url}/#/")
        page.click("header nav a >> text=Datasets")
        row = page.locator("#datasets tr[data-dataset='churn'] td")
        expect(row).to_have_count(7)
        assert row.all_inner_texts()[:5] == ["churn", "2", "v2", "1,234", "3"]
        page.screenshot(path=str(tmp_path / "datasets.png"), full_page=True)

        page.click("#datasets a >> text=v2")
        expect(page.locator("#dataset-name")).to_have_text("churn v2")
        expect(page.locator("#num-rows")).to_have_text("1,234")
        profile = page.locator("#profile tbody tr")
        expect(profile).to_have_count(3)
        age = page.locator("#profile tr[data-column='age']")
        assert age.locator("td").nth(1).inner_text() == "double"
        # a histogram of the number column: as many bars as the stored profile has bins,
        # their counts adding up to the rows
        bins = dv.profile["columns"]["age"]["histogram"]["counts"]
        bars = age.locator("svg.histogram rect.bar")
        expect(bars).to_have_count(len(bins))
        titles = bars.evaluate_all("els => els.map(e => e.textContent)")
        assert sum(int(t.rsplit(": ", 1)[1]) for t in titles) == 1234 == sum(bins)
        # the top values of a category column, the most frequent first
        plan = page.locator("#profile tr[data-column='plan'] svg.top-values rect.bar title")
        expect(plan).to_have_count(3)
        top = dv.profile["columns"]["plan"]["top"][0]
        assert plan.nth(0).text_content() == f"{top['value']}: {top['count']}"
        # the validation result of this version: the row count check fails, named with
        # what it observed
        card = page.locator("#validations section.validation[data-suite='churn-checks']")
        expect(card.locator("h3")).to_contain_text("FAILED (1 of 3 checks)")
        failed = card.locator("tr[data-check='row_count'] td").all_inner_texts()
        assert failed[2:4] == ["FAIL", "1234"] and "5000" in failed[4]
        passed = card.locator("tr[data-check='null_rate(age)'] td").nth(2)
        expect(passed).to_have_text("pass")
        page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)

        # the first version has no validation; a version that does not exist is said so
        page.click("#versions a >> text=v1")
        expect(page.locator("#num-rows")).to_have_text("200")
        expect(page.locator("#no-validations")).to_be_visible()
        page.goto(f"{server.url}/#/datasets/churn")  # no version: the newest
        expect(page.locator("#dataset-name")).to_have_text("churn v2")
        page.goto(f"{server.url}/#/datasets/churn/9")
        expect(page.locator("#no-version")).to_have_text(
            "No version 9 of dataset churn: it has versions 2, 1."
        )


def test_feature_views_show_their_freshness_and_mark_the_stale_one(
    chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from loopstack.features import FeatureStore
    from loopstack.server import create_app

    now = datetime.now(UTC).replace(microsecond=0)
    store = FeatureStore()
    store.apply(_views(now))
    store.materialize(now - timedelta(days=2), now)

    with ThreadedServer(create_app()) as server:
        fresh = httpx.get(f"{server.url}/api/v1/features/freshness", timeout=30).json()["views"]
        assert {f["view"]: f["stale"] for f in fresh} == {"ratings": True, "trips": False}

        page = chromium.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}/#/")
        page.click("header nav a >> text=Features")
        expect(page.locator("#views tbody tr")).to_have_count(3)
        expect(page.locator("#views tr[data-view='doubled'] td.freshness")).to_have_text(
            "on demand (computed at read time)"
        )
        ratings = page.locator("#views tr[data-view='ratings']")
        expect(ratings).to_have_class("stale")
        cells = ratings.locator("td").all_inner_texts()
        assert cells[2:5] == ["driver", "rating", "1 h 0 min"] and cells[6] == "3"
        assert cells[9].startswith("stale: 3 h 0 min old, past its TTL of 1 h 0 min")
        trips = page.locator("#views tr[data-view='trips'] td.freshness")
        expect(trips).to_contain_text("fresh: 30 min")
        page.screenshot(path=str(tmp_path / "features.png"), full_page=True)

        page.click("#views a >> text=ratings")
        expect(page.locator("#view-name")).to_have_text("ratings")
        expect(page.locator("#freshness")).to_have_class("freshness stale")
        expect(page.locator("#ttl")).to_have_text("1 h 0 min")
        feature = page.locator("#features tr[data-feature='rating'] td").all_inner_texts()
        assert feature == ["rating", "float64", "33.3 %"]  # one driver's rating is null
        expect(page.locator("#versions tbody tr")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "feature.png"), full_page=True)

        page.goto(f"{server.url}/#/features/doubled")
        expect(page.locator("#freshness")).to_have_text("on demand (computed at read time)")
        expect(page.locator("#features tr[data-feature='doubled'] td").nth(1)).to_have_text("int64")


def _users() -> dict[str, str]:
    """The first (admin's) token, a viewer and an ml-engineer of the default project."""
    from loopstack import auth
    from loopstack.store import open_stores

    db = open_stores().db
    secrets = {"root": auth.create_token(db, name="root", user="root")[0]}
    for user, role in (("vera", "viewer"), ("emil", "ml-engineer")):
        auth.create_user(db, user, actor="root")
        auth.add_member(db, "default", user, role, actor="root")
        secrets[user] = auth.create_token(db, name=user, user=user, actor="root")[0]
    return secrets


def test_the_audit_log_pages_newest_first_shows_a_break_and_what_a_viewer_is_refused(
    chromium: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect
    from sqlalchemy import text

    import loopstack as ls
    from loopstack.server import create_app
    from loopstack.store import open_stores

    secrets = _users()
    for n in range(3):
        ls.register_dataset(f"audited-{n}", _frame(20, n))
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    with ThreadedServer(create_app()) as server:
        root = {"Authorization": f"Bearer {secrets['emil']}"}
        events = httpx.get(f"{server.url}/api/v1/audit/events", headers=root).json()["events"]
        mine = [e["seq"] for e in events]  # the default project's, oldest first
        assert len(mine) >= 3

        page = chromium.new_page(viewport={"width": 1300, "height": 900})
        sign_in(page, server.url, secrets["vera"], "vera (viewer)")
        page.click("header nav a >> text=Audit")
        expect(page.locator("#audit-status")).to_have_attribute("data-state", "verified")
        expect(page.locator("#audit-status")).to_contain_text(
            f"Chain verified OK: {len(mine)} events checked"
        )
        expect(page.locator("#audit-refused")).to_contain_text(
            "403: GET /api/v1/audit/events needs the role 'ml-engineer'"
        )
        page.screenshot(path=str(tmp_path / "audit-viewer.png"), full_page=True)

        sign_in(page, server.url, secrets["emil"], "emil (ml-engineer)")
        page.goto(f"{server.url}/#/audit?size=2")
        shown = page.locator("#audit-events tbody tr")
        expect(shown).to_have_count(2)
        assert [int(s) for s in shown.evaluate_all("rs => rs.map(r => r.dataset.seq)")] == [
            mine[-1],
            mine[-2],
        ]
        newest = shown.nth(0).locator("td").all_inner_texts()
        last = events[-1]
        assert newest[2:] == [
            last["actor"],
            last["action"],
            f"{last['object_type']} {last['object_id']}",
        ]
        page.click("#older")
        expect(shown.nth(0)).to_have_attribute("data-seq", str(mine[-3]))
        # a dataset's event links to the dataset's page
        page.goto(f"{server.url}/#/audit")
        page.click("#audit-events a >> text=audited-1/1")
        expect(page.locator("#dataset-name")).to_have_text("audited-1 v1")

        # an edited row: the page says where the chain breaks and marks that event
        with open_stores().db.engine.begin() as conn:
            conn.execute(
                text("UPDATE audit_events SET actor = 'mallory' WHERE seq = :s"), {"s": mine[-2]}
            )
        page.goto(f"{server.url}/#/audit")
        status = page.locator("#audit-status")
        expect(status).to_have_attribute("data-state", "broken")
        expect(status).to_contain_text(f"Chain BROKEN at event {mine[-2]}")
        expect(page.locator(f"#audit-events tr[data-seq='{mine[-2]}']")).to_have_class("broken")
        page.screenshot(path=str(tmp_path / "audit-broken.png"), full_page=True)
