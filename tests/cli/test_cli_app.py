"""The root command: its help lists every group, and it loads fast."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from loopstack.cli import app


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in ("server", "experiments", "runs", "audit", "doctor", "token", "quickstart"):
        assert name in result.stdout, name


def test_the_cli_imports_no_heavy_modules_until_a_command_needs_them() -> None:
    code = (
        "import sys, json, loopstack.cli; "
        "print(json.dumps(sorted(m for m in ('sqlalchemy', 'fastapi', 'pandas', 'numpy', "
        "'pyarrow', 'uvicorn', 'httpx', 'alembic') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["nope"])
    assert result.exit_code == 2


def test_version() -> None:
    from typer.testing import CliRunner

    from loopstack import __version__
    from loopstack.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"loopstack {__version__}\n"
