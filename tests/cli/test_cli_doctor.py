"""`loopstack doctor`: configuration, versions, and a check of every configured backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopstack.cli import app


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def _backend_rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.split("backends", 1)[1].split("model flavors and extras")[0].splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[2]:
            rows[cells[2]] = line
    return rows


def test_defaults_are_healthy(ls_home: Path) -> None:
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert str(ls_home) in out
    assert f"sqlite:///{ls_home / 'loopstack.db'}" in out
    for name in ("loopstack", "python", "sqlalchemy", "fastapi", "pyarrow", "pandas"):
        assert f"│ {name} " in out, name
    rows = _backend_rows(out)
    assert set(rows) == {"metadata DB", "artifact store", "online store"}
    assert "0 materialized view(s)" in rows["online store"]
    assert all("✓" in r for r in rows.values())
    assert "probe blob" in rows["artifact store"]
    assert "all configured backends answer" in out
    # the probe leaves nothing behind
    assert not [p for p in (ls_home / "artifacts").rglob("*") if p.is_file()]


def test_unreachable_postgres_fails_and_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPSTACK_DB_URL", "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/x")
    result = invoke("doctor")
    assert result.exit_code == 1, result.output
    assert "hunter2" not in result.output
    assert "postgresql+psycopg://postgres:***@127.0.0.1:1/x" in result.stdout
    rows = _backend_rows(result.stdout)
    assert "✗" in rows["metadata DB"]
    assert "✓" in rows["artifact store"]
    assert "unreachable: metadata DB" in result.stdout


def test_checks_the_tracking_server_when_one_is_configured(
    live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", live_server)
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    row = _backend_rows(result.stdout)["tracking server"]
    assert "✓" in row and live_server in row and "GET /health ok" in row


def test_an_unreachable_tracking_server_or_redis_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LOOPSTACK_REDIS_URL", f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    result = invoke("doctor")
    assert result.exit_code == 1, result.output
    rows = _backend_rows(result.stdout)
    assert "✗" in rows["tracking server"] and "✗" in rows["redis"]
    assert "✓" in rows["metadata DB"]
    assert "s3cret" not in result.output
    assert "unreachable: tracking server, redis" in result.stdout


def test_doctor_says_which_flavors_are_installed_and_how_to_get_the_rest(
    ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import util

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name: None if name == "lightgbm" else real(name))
    out = invoke("doctor").stdout
    table = out.split("model flavors and extras", 1)[1]
    sklearn = next(line for line in table.splitlines() if "scikit-learn models" in line)
    assert "✓" in sklearn and "scikit-learn 1." in sklearn
    lgbm = next(line for line in table.splitlines() if "LightGBM models" in line)
    assert "missing lightgbm: pip install 'loopstack[lightgbm]'" in lgbm
