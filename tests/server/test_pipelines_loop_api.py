"""Pipelines and the loop through a real server: /api/v1/pipelines and /api/v1/loop, the
roles the server enforces, and `loopstack pipelines|loop ...` with an http tracking URI
giving the tables they give locally (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from loopstack.cli import app
from tests.conftest import ThreadedServer

FLOW = """
import pandas as pd

import loopstack as ls


@ls.step
def load(rows: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows)})


@ls.step
def total(frame: pd.DataFrame) -> int:
    return int(frame["x"].sum())


@ls.pipeline(name="sums")
def flow(rows: int = 10):
    total(load(rows=rows))
"""


def cli(*args: str) -> tuple[int, str, str]:
    got = CliRunner().invoke(app, list(args), env={"COLUMNS": "80", "LOOPSTACK_PROGRESS": "never"})
    assert got.exception is None or isinstance(got.exception, SystemExit), got.exception
    return got.exit_code, got.stdout, got.stderr


@pytest.fixture
def flow_file(tmp_path: Path) -> str:
    path = tmp_path / "sums_flow.py"
    path.write_text(textwrap.dedent(FLOW))
    return f"{path}:flow"


@pytest.fixture
def server(use_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server over the test's database; the client is switched to it by the test."""
    from loopstack.server import create_app
    from loopstack.store.remote import close_shared

    with ThreadedServer(create_app()) as s:
        yield s.url
        close_shared(s.url)


def _local_views(run: str) -> list[tuple[int, str, str]]:
    return [
        cli("pipelines", "list"),
        cli("pipelines", "list", "--json"),
        cli("pipelines", "list", "--pipeline", "sums", "--limit", "1"),
        cli("pipelines", "show", run),
        cli("pipelines", "show", run, "--json"),
        cli("pipelines", "graph", run),
        cli("pipelines", "graph", run, "--format", "mermaid"),
        cli("pipelines", "cost"),
        cli("pipelines", "cost", "--by", "project", "--since", "7d"),
        cli("loop", "triggers"),
        cli("loop", "triggers", "--json"),
        cli("loop", "status"),
        cli("loop", "status", "--json"),
    ]


@pytest.mark.slow
def test_the_cli_through_a_server_gives_the_local_tables(
    server: str, flow_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopstack.loop import Controller
    from loopstack.store import open_stores

    assert cli("pipelines", "run", flow_file, "-p", "rows=5")[0] == 0
    assert cli("pipelines", "run", flow_file, "-p", "rows=5")[0] == 0  # all cached
    code, _, err = cli(
        "loop", "triggers", "add", "nightly", "--kind", "cron", "--pipeline", flow_file,
        "--schedule", "0 2 * * *", "--param", "rows=7",
    )  # fmt: skip
    assert code == 0, err
    assert cli("loop", "triggers", "fire", "nightly", "--reason", "by hand")[0] == 0
    Controller(open_stores(), holder="t").run(iterations=2)  # launches the firing's run
    run = json.loads(cli("pipelines", "list", "--json")[1])[-1]["run"]
    local = _local_views(run)
    assert all(code == 0 for code, _, _ in local), local
    firings = json.loads(local[12][1])
    assert [(f["trigger"], f["status"], f["reason"]) for f in firings] == [
        ("nightly", "done", "by hand")
    ]

    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server)
    monkeypatch.delenv("LOOPSTACK_DB_URL")
    through = _local_views(run)
    for mine, theirs in zip(local, through, strict=True):
        assert theirs == mine
    assert "2 (2 cached)" in through[0][1] and "sums" in through[7][1]


def test_changes_through_the_server_and_its_errors(
    server: str, flow_file: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server)
    code, out, err = cli(
        "loop", "triggers", "add", "new-data", "--kind", "cron", "--pipeline", flow_file,
        "--schedule", "*/5 * * * *",
    )  # fmt: skip
    assert code == 0, err
    assert "added trigger 'new-data' (cron */5 * * * *)" in out
    assert cli("loop", "triggers", "disable", "new-data")[0] == 0
    listed = json.loads(cli("loop", "triggers", "--json")[1])
    assert [(t["name"], t["enabled"]) for t in listed] == [("new-data", False)]
    assert cli("loop", "triggers", "enable", "new-data")[0] == 0
    code, out, _ = cli("loop", "triggers", "fire", "new-data", "--reason", "labels")
    assert code == 0 and "firing #1 is pending" in out
    shown = json.loads(cli("loop", "status", "--json")[1])
    assert [(f["trigger"], f["status"], f["reason"]) for f in shown] == [
        ("new-data", "pending", "labels")
    ]
    # bad input: one line naming the problem, nothing changed
    missing = f"{tmp_path}/nope.py:flow"
    code, _, err = cli("loop", "triggers", "add", "bad", "--kind", "cron",
                       "--pipeline", missing, "--schedule", "* * * * *")  # fmt: skip
    assert code == 1 and err.startswith("error: the pipeline") and "does not exist" in err
    code, _, err = cli("loop", "triggers", "add", "new-data", "--kind", "cron",
                       "--pipeline", flow_file, "--schedule", "* * * * *")  # fmt: skip
    assert code == 1 and "exists already" in err
    code, _, err = cli("loop", "triggers", "fire", "ghost")
    assert code == 1 and err.strip() == "error: no trigger named 'ghost' in this project"
    code, _, err = cli("pipelines", "show", "0" * 32)
    assert code == 1 and "0" * 32 in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("pipelines", "cost", "--by", "team")
    assert code == 1 and "'pipeline' or 'project'" in err
    assert cli("loop", "triggers", "remove", "new-data")[0] == 0
    assert json.loads(cli("loop", "triggers", "--json")[1]) == []
    # what runs code here is refused through a server, saying why and what to do
    for args in (("pipelines", "run", flow_file), ("pipelines", "resume", "x"), ("loop", "run")):
        code, _, err = cli(*args)
        assert code == 1 and "LOOPSTACK_TRACKING_URI" in err and "unset" in err.lower(), err
        assert "work through the server" in err


def test_the_routes_answer_4xx_naming_the_problem(server: str, flow_file: str) -> None:
    with httpx.Client(base_url=f"{server}/api/v1", timeout=30) as http:
        answer = http.get("/pipelines/runs/nope")
        assert answer.status_code == 404 and "nope" in answer.json()["message"]
        answer = http.get("/pipelines/runs/nope/graph")
        assert answer.status_code == 404
        answer = http.get("/pipelines/runs", params={"limit": 0})
        assert answer.status_code == 422 and "limit" in answer.json()["message"]
        answer = http.get("/pipelines/cost", params={"by": "team"})
        assert answer.status_code == 422 and "team" in answer.json()["message"]
        answer = http.get("/pipelines/cost", params={"since": "yesterday"})
        assert answer.status_code == 422 and "since" in answer.json()["message"]
        assert http.get("/pipelines/cost", params={"since": "inf"}).status_code == 422
        trigger = {"name": "t", "kind": "cron", "pipeline": flow_file}
        answer = http.post("/loop/triggers", json={**trigger, "spec": {"schedule": "61 * * * *"}})
        assert answer.status_code == 422 and "got 61" in answer.json()["message"]
        answer = http.post("/loop/triggers", json={**trigger, "kind": "sometimes"})
        assert answer.status_code == 422 and "sometimes" in answer.json()["message"]
        missing = {**trigger, "pipeline": "no.such:flow", "spec": {"schedule": "* * * * *"}}
        answer = http.post("/loop/triggers", json=missing)
        assert answer.status_code == 422 and "does not resolve" in answer.json()["message"]
        answer = http.post("/loop/triggers", json={**trigger, "spec": {"schedule": "* * * * *"}})
        assert answer.status_code == 200, answer.text
        made = answer.json()
        assert made["pipeline"] == flow_file and made["enabled"] is True
        answer = http.post("/loop/triggers", json={**trigger, "spec": {"schedule": "* * * * *"}})
        assert answer.status_code == 409
        fire = {"reason": "now", "request_id": "r1"}
        first = http.post("/loop/triggers/t/fire", json=fire).json()["firing_id"]
        assert http.post("/loop/triggers/t/fire", json=fire).json() == {"firing_id": None}
        assert [f["firing_id"] for f in http.get("/loop/status").json()["firings"]] == [first]
        assert http.get("/loop/status", params={"limit": 0}).status_code == 422
        assert http.post("/loop/triggers/ghost/enable").status_code == 404
        assert http.delete("/loop/triggers/ghost").status_code == 404
        assert http.delete("/loop/triggers/t").json() == {"removed": "t"}
        drift = {
            "name": "d",
            "kind": "drift",
            "pipeline": flow_file,
            "spec": {"endpoint": "fraud", "above": 0.3, "cooldown": "soon"},
        }
        answer = http.post("/loop/triggers", json=drift)
        assert answer.status_code == 422 and "'cooldown' must be" in answer.json()["message"]
        drift["spec"] = {**drift["spec"], "cooldown": "1h"}
        answer = http.post("/loop/triggers", json=drift)
        assert answer.status_code == 200 and answer.json()["spec"]["cooldown"] == "1h"


def test_roles_viewer_reads_ml_engineer_changes_other_project_sees_nothing(
    use_db: str, flow_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopstack import auth
    from loopstack.server import create_app
    from loopstack.store import open_stores
    from loopstack.store.remote import close_shared

    assert cli("pipelines", "run", flow_file)[0] == 0  # a run in 'default'
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = open_stores().db
    auth.create_token(db, name="root", user="root")  # the first token: a global admin
    auth.create_project(db, "other", actor="root")
    tokens = {}
    for user, project, role in (
        ("vic", "default", "viewer"),
        ("eve", "default", "ml-engineer"),
        ("oscar", "other", "ml-engineer"),
    ):
        auth.create_user(db, user, actor="root")
        auth.add_member(db, project, user, role, actor="root")
        tokens[user] = auth.create_token(db, name=user, user=user, actor="root")[0]
    run = db.read(lambda conn: conn.exec_driver_sql("select run_uuid from pipeline_runs").all())
    run_uuid = run[0][0]
    with ThreadedServer(create_app()) as s:

        def client(user: str, project: str = "default") -> httpx.Client:
            headers = {"Authorization": f"Bearer {tokens[user]}", "X-Loopstack-Project": project}
            return httpx.Client(base_url=f"{s.url}/api/v1", headers=headers, timeout=30)

        body = {"name": "t", "kind": "manual", "pipeline": flow_file}
        with client("vic") as vic:
            assert vic.get(f"/pipelines/runs/{run_uuid}").json()["status"] == "FINISHED"
            assert vic.get(f"/pipelines/runs/{run_uuid}/graph").status_code == 200
            assert vic.get("/pipelines/cost").status_code == 200
            assert vic.get("/loop/triggers").json() == {"triggers": []}
            assert vic.post("/loop/triggers", json=body).status_code == 403
        with client("eve") as eve:
            assert eve.post("/loop/triggers", json=body).status_code == 200
        with client("vic") as vic:
            assert vic.post("/loop/triggers/t/fire", json={}).status_code == 403
            assert vic.post("/loop/triggers/t/disable").status_code == 403
            assert vic.delete("/loop/triggers/t").status_code == 403
            assert vic.get("/loop/status").json() == {"firings": []}
        with client("eve") as eve:
            assert eve.post("/loop/triggers/t/fire", json={}).status_code == 200
            assert len(eve.get("/loop/status").json()["firings"]) == 1
        with client("oscar", "default") as oscar:  # not a member of 'default'
            assert oscar.get("/pipelines/runs").status_code == 404
            assert oscar.get("/loop/triggers").status_code == 404
        with client("oscar", "other") as oscar:  # its own project holds none of them
            assert oscar.get("/pipelines/runs").json() == {"runs": []}
            assert oscar.get(f"/pipelines/runs/{run_uuid}").status_code == 404
            assert oscar.get("/loop/triggers").json() == {"triggers": []}
            assert oscar.post("/loop/triggers/t/fire", json={}).status_code == 404
            costs = oscar.get("/pipelines/cost", params={"by": "project"}).json()["rows"]
            assert costs == []  # default's cost is not shown to another project's user
        with client("eve") as eve:
            costs = eve.get("/pipelines/cost", params={"by": "project"}).json()["rows"]
            assert [r["key"] for r in costs] == ["default"]
        # the CLI with a viewer's token: reads work, a change is refused by the server
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", s.url)
        monkeypatch.setenv("LOOPSTACK_TOKEN", tokens["vic"])
        code, out, _ = cli("pipelines", "show", run_uuid)
        assert code == 0 and "FINISHED pipeline 'sums'" in out
        code, _, err = cli("loop", "triggers", "fire", "t")
        assert code == 1 and "ml-engineer" in err, err
        close_shared(s.url)
