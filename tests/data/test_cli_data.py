"""`loopstack data register|show|profile|validate|list`: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from loopstack.cli import app


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, ["data", *args], env={"COLUMNS": "250"})


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            "id": np.arange(500),
            "amount": rng.normal(10, 2, 500),
            "plan": rng.choice(["free", "pro"], 500),
        }
    )
    path = tmp_path / "ref.parquet"
    df.to_parquet(path, index=False)
    return path


def test_register_show_list_profile(use_db: str, parquet: Path) -> None:
    out = invoke("register", "signups", str(parquet), "--description", "May signups")
    assert out.exit_code == 0, out.output
    assert "registered signups version 1: 500 rows x 3 columns" in out.output
    again = invoke("register", "signups", str(parquet))
    assert "already registered as signups version 1" in again.output
    shown = invoke("show", "signups")
    assert shown.exit_code == 0, shown.output
    assert "signups version 1" in shown.output and "May signups" in shown.output
    assert "amount" in shown.output and "double" in shown.output
    assert any(ch in shown.output for ch in "▁▂▃▄▅▆▇█")  # the text histogram
    assert "free (" in shown.output
    assert "signups" in invoke("list").output
    prof = invoke("profile", str(parquet))
    assert prof.exit_code == 0 and "500 rows x 3 columns" in prof.output
    missing = invoke("show", "nope")
    assert missing.exit_code == 1 and "no dataset named 'nope'" in missing.output


def test_validate_infer_save_and_exit_codes(use_db: str, parquet: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite.json"
    ok = invoke("validate", str(parquet), "--infer-from", str(parquet), "--save-suite", str(suite))
    assert ok.exit_code == 0, ok.output
    assert "✓" in ok.output and "✗" not in ok.output and "result " in ok.output
    assert json.loads(suite.read_text())["checks"][0]["type"] == "schema"
    drifted = tmp_path / "drifted.parquet"
    df = pd.read_parquet(parquet)
    df.assign(amount=df.amount + 10, plan="enterprise").to_parquet(drifted, index=False)
    bad = invoke("validate", str(drifted), "--suite", str(suite), "--rows")
    assert bad.exit_code == 1
    assert "✗" in bad.output and "allowed_values(plan)" in bad.output
    assert "'plan': 'enterprise'" in bad.output
    invoke("register", "signups", str(parquet))
    by_name = invoke("validate", "signups@1", "--suite", str(suite))
    assert by_name.exit_code == 0, by_name.output


def test_validate_bad_input_is_one_red_line(use_db: str, tmp_path: Path, parquet: Path) -> None:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "s", "checks": [{"type": "bogus"}]}))
    out = invoke("validate", str(parquet), "--suite", str(suite))
    assert out.exit_code == 1
    assert "unknown check type 'bogus'" in out.output and "null_rate" in out.output
    assert "Traceback" not in out.output
    suite.write_text(json.dumps({"name": "s", "checks": [{"type": "row_count", "min": 1}]}))
    nothing = invoke("validate", "missing-thing", "--suite", str(suite))
    assert nothing.exit_code == 1 and "neither a file nor a registered dataset" in nothing.output
    neither = invoke("validate", str(parquet))
    assert neither.exit_code == 1 and "--suite" in neither.output
    gone = invoke("register", "x", str(tmp_path / "gone.csv"))
    assert gone.exit_code == 1 and "gone.csv" in gone.output
