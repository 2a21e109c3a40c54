"""The model registry's pages end to end: a real ``loopstack server`` with auth on and
Debian's headless Chromium. A model's page lists its versions, its aliases with every
move, and a pending promotion with its evidence and the gates recorded on the version.
A viewer's Approve is refused by the server (the page shows the server's 403 message,
the request stays pending); an ml-engineer who did not register the version approves
it and the alias moves. Checked through the API, screenshots under ``tmp_path``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _sign_in(page: Any, url: str, secret: str, who: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/#/models")
    page.evaluate("localStorage.clear()")
    page.reload()
    page.fill("#token", secret)
    page.click("form.login button")
    expect(page.locator("#who")).to_have_text(who)


def test_a_viewer_cannot_approve_a_promotion_and_an_ml_engineer_can(
    chromium: Any, ls_home: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    import loopstack as ls
    from loopstack import auth
    from loopstack.loop import GateReport, GateResult, record_gates
    from loopstack.registry import get_registry
    from loopstack.store import open_stores

    db = open_stores().db
    root = auth.create_token(db, name="root", user="root")[0]
    secrets: dict[str, str] = {}
    for user, role in (("dana", "data-scientist"), ("vera", "viewer"), ("emil", "ml-engineer")):
        auth.create_user(db, user, actor="root")
        auth.add_member(db, "default", user, role, actor="root")
        secrets[user] = auth.create_token(db, name=user, user=user, actor="root")[0]
    with ls.start_run(experiment="fraud", run_name="train-v2") as run:
        ls.log_metric("auc", 0.91)
    reg = get_registry(actor="dana")
    for n in (1, 2):
        reg.create_model_version(
            "fraud",
            source=f"runs:/{run.run_id}/model",
            files={"m.bin": f"{n}" * 64},
            run_id=run.run_id if n == 2 else None,
        )
    reg.set_alias("fraud", "staging", 1, reason="first candidate")
    reg.set_alias("fraud", "staging", 2, reason="better auc")
    request = reg.request_promotion("fraud", 2, alias="production", evidence={"auc": 0.91})
    report = GateReport(
        results=[
            GateResult("primary:auc", True, "auc 0.91 beats 0.85 by more than 0.01"),
            GateResult("lineage", True, "trained by a recorded run"),
        ],
        challenger="models:/fraud/2",
    )
    record_gates(report, "fraud", 2, actor="dana")

    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home), "LOOPSTACK_AUTH": "on"}
    proc, url = start_server(env)
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {root}"}, timeout=30)
    try:

        def state() -> str:
            got = api.get("/api/v1/approvals", params={"name": "fraud"}).json()["requests"]
            return next(r["state"] for r in got if r["request_id"] == request.request_id)

        page = chromium.new_page(viewport={"width": 1300, "height": 1100})
        _sign_in(page, url, secrets["vera"], "vera (viewer)")
        expect(page.locator("#models tbody tr")).to_have_count(1)
        page.click("#models a >> text=fraud")
        expect(page.locator("#model-name")).to_have_text("fraud")
        versions = page.locator("#versions tbody tr")
        expect(versions).to_have_count(2)
        newest = versions.nth(0).locator("td").all_inner_texts()
        assert newest[:3] == ["v2", "pending", "@staging"]
        assert newest[5] == "dana" and newest[6] == run.run_id[:12]
        # the alias history, newest move first
        moves = page.locator("#alias-history tbody tr")
        expect(moves).to_have_count(2)
        assert moves.nth(0).locator("td").all_inner_texts()[1:6] == [
            "@staging",
            "v1",
            "v2",
            "dana",
            "better auc",
        ]
        card = page.locator(f"section.request[data-request-id='{request.request_id}']")
        expect(card.locator("h3")).to_contain_text("v2 → @production")
        expect(card.locator("table.evidence tr[data-key='auc'] td")).to_have_text("0.91")
        gates = card.locator("table.gate-results tbody tr")
        expect(gates).to_have_count(2)
        expect(gates.nth(0)).to_contain_text("auc 0.91 beats 0.85")
        expect(card.locator(".gates")).to_contain_text("Every gate passed")

        # a viewer's Approve: the server's refusal, as it wrote it; nothing changes
        refusal = httpx.post(
            f"{url}/api/v1/approvals/{request.request_id}/approve",
            json={},
            headers={"Authorization": f"Bearer {secrets['vera']}"},
        )
        assert refusal.status_code == 403
        card.locator("button.approve").click()
        expect(card.locator(".error")).to_have_text(f"403: {refusal.json()['message']}")
        expect(card.locator("button.approve")).to_be_enabled()
        page.screenshot(path=str(tmp_path / "viewer-refused.png"), full_page=True)
        assert state() == "pending"
        assert api.get("/api/v1/models/fraud/aliases/production").status_code == 404

        # the ml-engineer who did not register it approves: the alias moves
        _sign_in(page, url, secrets["emil"], "emil (ml-engineer)")
        page.goto(f"{url}/#/models/fraud")
        card.locator("input.comment").fill("gates and auc hold")
        card.locator("button.approve").click()
        expect(card.locator("h3 .approval")).to_have_text("approved")
        expect(card.locator("button.approve")).to_have_count(0)
        expect(card).to_contain_text("approved by emil")
        expect(page.locator("#aliases tr[data-alias='production'] td")).to_have_text(
            ["@production", "v2"]
        )
        assert page.locator("#alias-history tbody tr").nth(0).locator("td").all_inner_texts()[
            1:6
        ] == ["@production", "—", "v2", "emil", "gates and auc hold"]
        page.screenshot(path=str(tmp_path / "ml-engineer-approved.png"), full_page=True)
        assert state() == "approved"
        assert api.get("/api/v1/models/fraud/aliases/production").json()["version"] == 2
        # a version's run opens the run's page
        page.click(f"#versions a >> text={run.run_id[:12]}")
        expect(page.locator("#run-name")).to_have_text("train-v2")
    finally:
        api.close()
        stop_server(proc)
