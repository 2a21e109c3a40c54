"""`loopstack serve`'s operations flags: documented in --help, and refused in one line
before anything listens when they cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopstack.cli import app
from loopstack.config import settings
from loopstack.errors import Invalid
from tests.serving.conftest import log_models

FLAGS = (
    "--auth",
    "--rate-limit",
    "--rate-burst",
    "--ssl-certfile",
    "--ssl-keyfile",
    "--graceful-timeout",
)


def test_the_flags_are_in_the_help() -> None:
    shown = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for flag in FLAGS:
        assert flag in shown.output, flag
    assert "viewer" in shown.output and "Retry-After" in shown.output


def test_refusals_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_models()
    runner = CliRunner()
    serve = ["serve", "--model", "models:/iris/1", "--port", "1"]
    alone = runner.invoke(app, [*serve, "--ssl-certfile", str(tmp_path / "c.pem")])
    assert alone.exit_code == 1 and "together" in alone.output, alone.output
    missing = runner.invoke(
        app,
        [*serve, "--ssl-certfile", str(tmp_path / "c.pem"), "--ssl-keyfile", str(tmp_path)],
    )
    assert missing.exit_code == 1 and "no such file" in missing.output, missing.output
    negative = runner.invoke(app, [*serve, "--rate-limit", "-1"])
    assert negative.exit_code == 2 and "--rate-limit" in negative.output
    for result in (alone, missing, negative):
        assert "Traceback" not in result.output

    monkeypatch.setenv("LOOPSTACK_SERVING_RATE_LIMIT", "fast")
    bad_setting = runner.invoke(app, serve)
    assert bad_setting.exit_code == 1, bad_setting.output
    assert "LOOPSTACK_SERVING_RATE_LIMIT" in bad_setting.output
    monkeypatch.delenv("LOOPSTACK_SERVING_RATE_LIMIT")

    # tokens are checked against the metadata DB itself, not through a tracking server
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", "http://127.0.0.1:9")
    remote = runner.invoke(app, [*serve, "--auth"])
    assert remote.exit_code == 1 and "LOOPSTACK_DB_URL" in remote.output, remote.output
    assert "Traceback" not in remote.output


def test_the_settings_read_the_serving_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (settings().serving_auth, settings().serving_rate_limit) == (False, 0.0)
    monkeypatch.setenv("LOOPSTACK_SERVING_AUTH", "on")
    monkeypatch.setenv("LOOPSTACK_SERVING_RATE_LIMIT", "2.5")
    monkeypatch.setenv("LOOPSTACK_SERVING_RATE_BURST", "10")
    got = settings()
    assert (got.serving_auth, got.serving_rate_limit, got.serving_rate_burst) == (True, 2.5, 10)
    monkeypatch.setenv("LOOPSTACK_SERVING_RATE_BURST", "-1")
    with pytest.raises(Invalid, match="LOOPSTACK_SERVING_RATE_BURST must be a number >= 0"):
        settings()
