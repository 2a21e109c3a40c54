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


def _cut_tail(home: Path, keep: int) -> None:
    """Delete the events after ``keep`` and fix the head row, as an attacker would."""
    with sqlite3.connect(home / "loopstack.db") as conn:
        (kept,) = conn.execute("SELECT hash FROM audit_events WHERE seq=?", (keep,)).fetchone()
        conn.execute("DELETE FROM audit_events WHERE seq > ?", (keep,))
        conn.execute("UPDATE audit_head SET seq=?, hash=? WHERE id=1", (keep, kept))


def test_anchor_then_verify_names_a_cut_tail(run_id: str, ls_home: Path, tmp_path: Path) -> None:
    result = invoke("audit", "anchor")
    assert result.exit_code == 0, result.output
    head = audit.head_seq(open_stores().db)
    assert f"anchored seq {head} " in result.stdout
    assert str(ls_home / "audit-anchors.jsonl") in result.stdout.replace("\n", "")
    elsewhere = tmp_path / "anchors.jsonl"
    assert invoke("audit", "anchor", "--to", str(elsewhere)).exit_code == 0
    ok = invoke("audit", "verify", "--anchors")
    assert ok.exit_code == 0 and "1 anchors matched" in ok.stdout, ok.output

    _cut_tail(ls_home, head - 2)
    assert invoke("audit", "verify").exit_code == 0  # the chain alone cannot tell
    for args in (["--anchors"], ["--anchor-path", str(elsewhere)]):
        result = invoke("audit", "verify", *args)
        assert result.exit_code == 1
        assert f"the log was cut: an anchor at seq {head} (" in result.stderr
        assert f"but the log ends at {head - 2}" in result.stderr
        assert "Traceback" not in result.output


def test_rotate_key_signs_new_events_with_the_new_key(run_id: str, ls_home: Path) -> None:
    result = invoke("audit", "rotate-key")
    assert result.exit_code == 0, result.output
    kid = result.stdout.split()[3]
    assert kid.startswith("k2-") and f"{kid}:" in (ls_home / "audit.key").read_text()
    ls.TrackingClient().set_experiment("after-rotation")
    assert audit.events(open_stores().db)[-1]["key_id"] == kid
    assert invoke("audit", "verify").exit_code == 0


def test_anchor_and_verify_through_a_server(
    run_id: str, ls_home: Path, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", live_server)
    result = invoke("audit", "anchor")
    assert result.exit_code == 0, result.output
    assert (ls_home / "audit-anchors.jsonl").exists()  # where the server's settings put it
    assert invoke("audit", "verify", "--anchors").exit_code == 0
    refused = invoke("audit", "verify", "--anchor-path", "/elsewhere.jsonl")
    assert refused.exit_code == 1 and "through a server, anchors are those" in refused.stderr
    head = audit.head_seq(open_stores().db)
    _cut_tail(ls_home, head - 1)
    result = invoke("audit", "verify", "--anchors")
    assert result.exit_code == 1 and "the log was cut" in result.stderr, result.output
