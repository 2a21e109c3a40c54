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
from tests.ui.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _users() -> dict[str, str]:
    """The first (admin's) token, then a data scientist, a viewer and an ml-engineer of
    the default project: each one's token by user name."""
    from loopstack import auth
    from loopstack.store import open_stores

    db = open_stores().db
    secrets = {"root": auth.create_token(db, name="root", user="root")[0]}
    for user, role in (("dana", "data-scientist"), ("vera", "viewer"), ("emil", "ml-engineer")):
        auth.create_user(db, user, actor="root")
        auth.add_member(db, "default", user, role, actor="root")
        secrets[user] = auth.create_token(db, name=user, user=user, actor="root")[0]
    return secrets


def test_a_viewer_cannot_approve_a_promotion_and_an_ml_engineer_can(
    chromium: Any, ls_home: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    import loopstack as ls
    from loopstack.loop import GateReport, GateResult, record_gates
    from loopstack.registry import get_registry

    secrets = _users()
    root = secrets["root"]
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
        sign_in(page, url, secrets["vera"], "vera (viewer)")
        page.click("header nav a >> text=Models")
        expect(page.locator("#models tbody tr")).to_have_count(1)
        page.click("#models a >> text=fraud")
        expect(page.locator("#model-name")).to_have_text("fraud")
        versions = page.locator("#versions tbody tr")
        expect(versions).to_have_count(2)
        newest = versions.nth(0).locator("td").all_inner_texts()
        assert newest[:3] == ["v2", "pending", "@staging"]
        assert newest[5] == "dana" and newest[6] == run.run_id[:12]
        # the newest version's lineage: the run that produced it, linked to its page
        graph = page.locator("#lineage-graph svg.lineage")
        expect(graph.locator(".lineage-node.root")).to_have_attribute(
            "data-node", "model_version:fraud/2"
        )
        expect(graph.locator(f"a .lineage-node[data-node='run:{run.run_id}']")).to_have_count(1)
        expect(graph.locator(".lineage-edge")).to_have_attribute("data-relation", "produced")
        page.select_option("#lineage-version", "1")
        expect(graph.locator(".lineage-node")).to_have_count(1)  # v1: no recorded run
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
        sign_in(page, url, secrets["emil"], "emil (ml-engineer)")
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
        # and its lineage: the model version it produced, linked to the model's page
        run_graph = page.locator("#run-lineage svg.lineage")
        expect(run_graph.locator(".lineage-node.root")).to_have_attribute(
            "data-node", f"run:{run.run_id}"
        )
        expect(
            run_graph.locator("a .lineage-node[data-node='model_version:fraud/2']")
        ).to_have_count(1)
        page.screenshot(path=str(tmp_path / "run-lineage.png"), full_page=True)
    finally:
        api.close()
        stop_server(proc)


def test_a_canary_weight_changes_from_the_page_and_a_viewer_is_refused(
    chromium: Any, ls_home: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    import loopstack as ls
    from loopstack.registry import get_registry

    secrets = _users()
    reg = get_registry(actor="dana")
    for n in (1, 2):
        reg.create_model_version("churn", source=f"file:///m{n}", files={"m.bin": f"{n}" * 64})
    reg.set_alias("churn", "staging", 1)
    deployments = ls.deployments(actor="emil")
    deployments.create("churn-api", "churn@staging")
    deployments.canary("churn-api", "churn/2", weight=5)

    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home), "LOOPSTACK_AUTH": "on"}
    proc, url = start_server(env)
    headers = {"Authorization": f"Bearer {secrets['root']}"}
    api = httpx.Client(base_url=url, headers=headers, timeout=30)

    def weights() -> dict[str, float]:
        got = api.get("/api/v1/deployments/churn-api").json()
        return {a["role"]: a["weight"] for a in got["arms"]}

    try:
        page = chromium.new_page(viewport={"width": 1300, "height": 900})
        sign_in(page, url, secrets["vera"], "vera (viewer)")
        page.click("header nav a >> text=Deployments")
        expect(page.locator("#deployments tbody tr")).to_have_count(1)
        page.click("#deployments a >> text=churn-api")
        expect(page.locator("#deployment-name")).to_have_text("churn-api")
        expect(page.locator("#policy")).to_have_text("canary")
        primary = page.locator("#arms tr[data-role='primary'] td")
        expect(primary).to_have_text(["blue", "primary", "churn@staging", "v1", "95 %"])
        expect(page.locator("#canary-weight")).to_have_value("5")
        revisions = page.locator("#revisions tbody tr")
        expect(revisions).to_have_count(2)
        assert revisions.nth(0).locator("td").all_inner_texts()[:3] == ["2", "canary", "canary"]

        # a viewer's Save: the server's refusal, as it wrote it; the weight stays
        page.fill("#canary-weight", "20")
        page.click("#save-weight")
        expect(page.locator("#canary-error")).to_contain_text("403: ")
        expect(page.locator("#canary-error")).to_contain_text("'vera' is 'viewer'")
        page.screenshot(path=str(tmp_path / "viewer-refused.png"), full_page=True)
        assert weights() == {"primary": 95.0, "canary": 5.0}

        # a weight the store refuses: its message, nothing changes
        sign_in(page, url, secrets["emil"], "emil (ml-engineer)")
        page.goto(f"{url}/#/deployments/churn-api")
        page.fill("#canary-weight", "100")
        page.click("#save-weight")
        expect(page.locator("#canary-error")).to_contain_text(
            "422: a canary's weight is a percentage above 0 and below 100"
        )
        assert weights() == {"primary": 95.0, "canary": 5.0}

        # an ml-engineer's: a new revision with the new split
        page.fill("#canary-weight", "25")
        page.click("#save-weight")
        expect(page.locator("#revision")).to_have_text("3")
        expect(primary.nth(4)).to_have_text("75 %")
        expect(page.locator("#canary-weight")).to_have_value("25")
        expect(revisions).to_have_count(3)
        page.screenshot(path=str(tmp_path / "canary-25.png"), full_page=True)
        assert weights() == {"primary": 75.0, "canary": 25.0}
        stored = api.get("/api/v1/deployments/churn-api/history").json()["revisions"][-1]
        assert stored["actor"] == "emil" and stored["action"] == "canary"
    finally:
        api.close()
        stop_server(proc)
