"""`loopstack audit verify` and `loopstack audit log`, on the store and through a server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app
from loopstack.store import audit, open_stores


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@pytest.fixture
def run_id() -> str:
    with ls.start_run(experiment="audited", params={"lr": 0.1}, capture_env=False) as run:
        ls.log_metric("auc", 0.9)
    return run.run_id


def _tamper(home: Path) -> None:
    with sqlite3.connect(home / "loopstack.db") as conn:
        conn.execute("UPDATE audit_events SET actor='mallory' WHERE seq=2")


def test_verify_passes_then_names_the_edited_event(run_id: str, ls_home: Path) -> None:
    result = invoke("audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK")
    count = len(audit.events(open_stores().db))
    assert f"({count} events verified)" in result.stdout

    _tamper(ls_home)
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the audit chain is broken at seq 2: ")
    assert "edited" in result.stderr
    assert "(1 events before it verified)" in result.stderr
    assert "Traceback" not in result.output


def test_verify_through_a_server(
    run_id: str, ls_home: Path, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", live_server)
    result = invoke("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout
    _tamper(ls_home)
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    assert "broken at seq 2" in result.stderr


def test_verify_an_unreachable_server_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach the loopstack server at http://127.0.0.1:")


def test_log_prints_events_for_an_object(run_id: str) -> None:
    result = invoke("audit", "log")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "experiment.create" in out and "run.create" in out
    assert f"run/{run_id}" in out

    only_run = invoke("audit", "log", "--object", f"run/{run_id}").stdout
    assert "experiment.create" not in only_run
    assert "run.create" in only_run and "run.end" in only_run

    only_type = invoke("audit", "log", "--object", "experiment").stdout
    assert "experiment.create" in only_type and "run.create" not in only_type

    newest = invoke("audit", "log", "--limit", "1").stdout
    rows = [line for line in newest.splitlines() if line.startswith("│")]
    assert len(rows) == 1 and "run.end" in rows[0]  # the newest: the run's end


def test_log_through_a_server(
    run_id: str, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", live_server)
    result = invoke("audit", "log", "--object", f"run/{run_id}", "--limit", "2")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2 and all(run_id in r for r in rows)


def test_log_with_no_events() -> None:
    result = invoke("audit", "log", "--object", "run/none")
    assert result.exit_code == 0
    assert "No audit events match" in result.stdout
