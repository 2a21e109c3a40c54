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
    # the line names the file's path first: a long temp path wraps it at 80 columns
    assert prof.exit_code == 0 and "500 rows x 3 columns" in " ".join(prof.output.split())
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


@pytest.fixture
def payments(use_db: str) -> pd.DataFrame:
    """A realistic dataset: ids, amounts, a category, timestamps, a label, a sparse column."""
    import loopstack as ls

    rng = np.random.default_rng(0)
    n = 5000
    categories = ["grocery", "electronics", "travel", "restaurants", "fuel"]
    df = pd.DataFrame(
        {
            "customer_id": rng.integers(1, 250_000, n),
            "amount": rng.lognormal(3, 1.2, n).round(2),
            "merchant_category": rng.choice(categories, n),
            "ts": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s"),
            "is_fraud": (rng.random(n) < 0.02).astype(int),
            "country": rng.choice(["DE", "FR", None, "US"], n),
        }
    )
    ls.register_dataset("payments", df)
    return df


def _at(width: int, *args: str):  # noqa: ANN202 - click's Result
    return CliRunner().invoke(app, ["data", *args], env={"COLUMNS": str(width)})


def test_show_reads_at_80_columns_one_line_per_column(payments: pd.DataFrame) -> None:
    import loopstack as ls

    got = _at(80, "show", "payments")
    assert got.exit_code == 0, got.output
    lines = got.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, got.output
    header = next(i for i, line in enumerate(lines) if line.startswith("column "))
    assert lines[header].split() == [
        "column", "dtype", "nulls", "distinct", "min", "max", "histogram",
    ]  # fmt: skip
    rows = lines[header + 2 : header + 2 + len(payments.columns)]
    # each data column is one whole line: its name (or its start), no cell folded
    for name, row in zip(payments.columns, rows, strict=True):
        assert row.startswith(name[:14]), got.output
    assert lines[header + 2 + len(payments.columns)].rstrip() == (
        "4 more columns (--wide shows all, --columns picks)"
    )
    cells = {row.split()[0].rstrip("…"): row.split() for row in rows}
    assert cells["customer_id"][1:6] == ["int64", "0", "4,959", "48", "250k"]
    assert cells["amount"][4:6] == ["0.35", "1,001"]  # compact numbers
    assert cells["ts"][1:6] == ["timestamp", "0", "4,999", "2026-01-01", "2026-03-31"]
    assert cells["country"][2] == f"{payments.country.isna().sum():,}"
    assert any(ch in rows[0] for ch in "▁▂▃▄▅▆▇█")  # the histogram
    assert lines[:3] == [
        "payments version 1",
        lines[1],
        f"sha256 {ls.get_dataset('payments').digest}",  # whole, on a line of its own
    ]
    assert lines[1].startswith("5,000 rows x 6 columns, created ")


def test_show_wide_columns_json(payments: pd.DataFrame) -> None:
    wide = _at(80, "show", "payments", "--wide")
    assert wide.exit_code == 0, wide.output
    header = next(line for line in wide.output.splitlines() if line.startswith("column "))
    assert header.split() == [
        "column", "dtype", "nulls", "distinct", "min", "p50", "max", "histogram", "top",
        "mean", "std",
    ]  # fmt: skip
    assert "travel (1,035), fuel (999), grocery (993)" in wide.output
    picked = _at(80, "show", "payments", "--columns", "column,mean").output.splitlines()
    header = next(i for i, line in enumerate(picked) if line.startswith("column "))
    assert picked[header].split() == ["column", "mean"]
    assert picked[header + 2].split() == ["customer_id", "125k"]
    raw = json.loads(_at(80, "show", "payments", "--json").output)
    by_name = {r["column"]: r for r in raw}
    assert set(by_name) == set(payments.columns)
    assert by_name["amount"]["max"] == payments.amount.max()  # raw, not compacted
    assert by_name["ts"]["dtype"] == "timestamp[us, tz=UTC]"
    assert len(by_name["customer_id"]["histogram"]) == 10
    assert _at(80, "show", "payments", "--columns", "column,median").exit_code == 2


def test_profile_of_a_file_fits_80_columns(payments: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "payments.parquet"
    payments.to_parquet(path)
    got = _at(80, "profile", str(path))
    assert got.exit_code == 0, got.output
    lines = got.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, got.output
    assert sum(1 for line in lines if line.startswith(("customer_id ", "amount "))) == 2
