"""`loopstack rollout ...` against the local store: start a plan given as options,
approve as another engineer, tick it through, read it back in 80 columns, override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from loopstack.cli import app
from loopstack.serving import SqlDeployments
from tests.loop.rollout_models import Models, record_real_gates, three_versions


@pytest.fixture
def models() -> Models:
    """The three versions in this test's LOOPSTACK_HOME (SQLite)."""
    return three_versions()


def run(*args: str, user: str = "alice", width: int = 80) -> str:
    result = CliRunner().invoke(
        app, list(args), env={"COLUMNS": str(width), "LOOPSTACK_USER": user}
    )
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def fails(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return str(result.stderr)


def test_a_rollout_through_the_cli(models: Models, tmp_path: Path) -> None:
    out = run(
        "rollout",
        "start",
        "iris-api",
        "iris",
        "2",
        "--step",
        "0.05:0",
        "--step",
        "1.0:0",
        "--guardrail",
        "latency_p99_ms<500",
        "--interval",
        "0.001",
    )
    assert "rollout 1: iris/2 on iris-api is awaiting_approval" in out
    assert "loopstack rollout approve 1" in out
    run("rollout", "approve", "1", "--comment", "gates passed", user="bob")
    assert "rollout 1 on iris-api: canary 0.05" in run("rollout", "tick")
    assert "canary 5%" in run("rollout", "list")
    paused = run("rollout", "pause", "1")
    assert "is paused (canary 5%)" in paused
    run("rollout", "resume", "1")
    assert "is promoted" in run("rollout", "promote", "1")
    assert [a.version for a in SqlDeployments(models.stores).get("iris-api").arms] == [2]

    listing = run("rollout", "list")
    assert all(cell_len(line) <= 80 for line in listing.splitlines())
    assert "promoted" in listing
    status = run("rollout", "status", "1")
    for action in ("rollout.start", "rollout.canary", "rollout.pause", "rollout.promote"):
        assert action in status
    assert "guardrails: latency_p99_ms < 500" in status
    assert "gates: evaluation " in status and "(primary" in status and "; passed" in status
    got = json.loads(run("rollout", "status", "1", "--json"))
    assert got["status"] == "promoted" and got["reason"] == "forced by alice"
    assert json.loads(run("rollout", "list", "--json"))[0]["id"] == 1

    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps({"steps": [{"weight": 0.5, "bake_s": 9}], "require_approval": False})
    )
    record_real_gates(models, 1)
    out = run("rollout", "start", "iris-api", "iris", "1", "--plan", str(plan))
    assert "is canary (canary 50%)" in out
    assert "is rolled_back" in run("rollout", "rollback", "2")


def test_bad_input_is_one_line_saying_what_was_expected(models: Models, tmp_path: Path) -> None:
    assert "METRIC OP THRESHOLD" in fails(
        "rollout", "start", "iris-api", "iris", "2", "--step", "0.1", "--guardrail", "p99 < x"
    )
    assert "must be one of" in fails(
        "rollout", "start", "iris-api", "iris", "2", "--step", "0.1", "--guardrail", "p95<3"
    )
    assert "WEIGHT[:BAKE_SECONDS]" in fails(
        "rollout", "start", "iris-api", "iris", "2", "--step", "x"
    )
    bad = tmp_path / "plan.json"
    bad.write_text("{")
    assert "is not JSON" in fails("rollout", "start", "iris-api", "iris", "2", "--plan", str(bad))
    assert "no rollout with id 9" in fails("rollout", "pause", "9")
    listed = tmp_path / "evidence.json"
    listed.write_text("[1]")
    assert "is a JSON object; got list" in fails(
        "rollout", "start", "iris-api", "iris", "2", "--step", "0.1", "--evidence", str(listed)
    )


def test_evidence_goes_with_the_approval_request(models: Models, tmp_path: Path) -> None:
    from loopstack.registry import SqlRegistry

    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps({"gates_passed": True, "eval_report": "runs:/x/report"}))
    run("rollout", "start", "iris-api", "iris", "2", "--step", "0.1", "--evidence", str(evidence))
    (request,) = SqlRegistry(models.stores).list_requests(name="iris", state="pending")
    assert request.evidence["eval_report"] == "runs:/x/report"
