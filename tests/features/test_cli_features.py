"""`loopstack features apply | list | show`."""

from __future__ import annotations

import json
import textwrap

from typer.testing import CliRunner

from loopstack.cli._app import app


def _write(tmp_path, dtype: str) -> str:
    import pandas as pd

    data = tmp_path / "stats.parquet"
    pd.DataFrame(
        {
            "driver_id": [1],
            "event_timestamp": [pd.Timestamp("2024-01-01")],
            "rate": [0.1] if dtype.startswith("float") else [1],  # the data of the declared type
        }
    ).to_parquet(data)
    path = tmp_path / "defs.py"
    path.write_text(
        textwrap.dedent(f"""
        from datetime import timedelta
        from loopstack import Entity, FeatureView, Field, FileSource
        driver = Entity("driver", join_keys=["driver_id"], owner="ana")
        stats = FeatureView("stats", entities=[driver], source=FileSource({str(data)!r}),
                            schema=[Field("rate", {dtype!r})], ttl=timedelta(hours=2),
                            owner="ana")
    """)
    )
    return str(path)


def test_apply_list_show_and_a_refused_breaking_change(tmp_path) -> None:
    runner = CliRunner()
    defs = _write(tmp_path, "float64")
    res = runner.invoke(app, ["features", "apply", defs])
    assert res.exit_code == 0, res.output
    assert "feature view stats: version 1" in res.output
    assert "unchanged" in runner.invoke(app, ["features", "apply", defs]).output
    listed = json.loads(runner.invoke(app, ["features", "list", "--json"]).output)
    assert [(v["name"], v["version"], v["owner"]) for v in listed] == [("stats", 1, "ana")]
    shown = runner.invoke(app, ["features", "show", "stats"])
    assert "rate: float64" in shown.output and "ttl: 7200s" in shown.output
    defs = _write(tmp_path, "int64")
    refused = runner.invoke(app, ["features", "apply", defs])
    assert refused.exit_code == 1 and "changes type from float64 to int64" in refused.output
    forced = runner.invoke(app, ["features", "apply", defs, "--force"])
    assert forced.exit_code == 0 and "forced" in forced.output
    old = json.loads(
        runner.invoke(app, ["features", "show", "stats", "--version", "1", "--json"]).output
    )
    assert old["definition"]["schema"] == [{"name": "rate", "dtype": "float64"}]
    assert old["versions"] == [1, 2]
    missing = runner.invoke(app, ["features", "show", "nope"])
    assert missing.exit_code == 1 and "no feature view named 'nope'" in missing.output
