"""`loopstack pipelines run|list|show|resume|graph|cost` on a pipeline file, as a user runs
them: progress lines as steps go, the cache saying so, a failure that names the step and
the command that resumes it, tables that fit 80 columns."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from rich.cells import cell_len
from typer.testing import CliRunner

from loopstack.cli import app

FLOW = """
from pathlib import Path

import pandas as pd

import loopstack as ls

FLAG = Path(__file__).with_name("fail-once")


@ls.step
def load(rows: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows), "y": [i % 2 for i in range(rows)]})


@ls.step(retries=1, backoff_s=0.01)
def summarise(frame: pd.DataFrame) -> dict[str, float]:
    if FLAG.exists():
        raise RuntimeError("the warehouse is down")
    return {"rows": float(len(frame)), "positive": float(frame["y"].mean())}


@ls.step
def report(metrics: dict[str, float], frame: pd.DataFrame) -> str:
    return f"{int(metrics['rows'])} rows, {len(frame.columns)} columns"


@ls.pipeline(name="daily-summary")
def flow(rows: int = 10):
    frame = load(rows=rows)
    report(summarise(frame), frame)
"""


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["pipelines", *args], env={"COLUMNS": "80", "LOOPSTACK_PROGRESS": "always"}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _fits(text: str, width: int = 80) -> None:
    for line in text.splitlines():
        assert cell_len(line) <= width, line


def test_run_list_show_graph_cost_and_a_rerun_from_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "flows.py"
    path.write_text(textwrap.dedent(FLOW))
    code, out, err = _cli("run", f"{path}:flow", "-p", "rows=25")
    assert code == 0, err
    assert "FINISHED pipeline 'daily-summary'" in out and "3 steps, 0 cached" in out
    assert "▶ load" in err and "✓ report" in err  # each step as it goes
    code, out, err = _cli("run", f"{path}:flow", "-p", "rows=25")
    assert code == 0 and "3 steps, 3 cached" in out
    assert err.count("↺") == 3 and "cached (unchanged code, inputs, params" in err
    code, out, _ = _cli("run", f"{path}:flow", "-p", "rows=26")  # a new input: all run
    assert code == 0 and "0 cached" in out

    code, out, _ = _cli("list", "--json")
    runs = json.loads(out)
    assert code == 0 and [r["status"] for r in runs] == ["FINISHED"] * 3
    assert [r["steps"] for r in runs] == ["3 (0 cached)", "3 (3 cached)", "3 (0 cached)"]
    newest = runs[0]["run"]
    code, table, _ = _cli("list")
    assert code == 0 and newest in table and "daily-summary" in table
    _fits(table)

    code, out, _ = _cli("show", newest)
    assert code == 0 and "load" in out and "summarise" in out and "FINISHED" in out
    _fits(out)
    code, out, _ = _cli("show", newest, "--json")
    steps = {s["step"]: s for s in json.loads(out)}
    assert set(steps) == {"load", "summarise", "report"}
    assert all(s["wall"] is not None and s["run_id"] for s in steps.values())

    code, out, _ = _cli("graph", f"{path}:flow")
    assert code == 0 and out.splitlines()[0].startswith(" 1. load")
    assert "report" in out and "frame=load" in out
    _fits(out)
    code, out, _ = _cli("graph", newest, "--format", "mermaid")
    assert code == 0 and out.startswith("flowchart TD")
    assert "n_load -->|frame| n_summarise" in out and "(FINISHED)" in out

    code, out, _ = _cli("cost", "--json")
    (row,) = json.loads(out)
    assert row["pipeline"] == "daily-summary" and row["runs"] == 3 and row["cached"] == 3
    code, table, _ = _cli("cost", "--since", "1h")
    assert code == 0 and "daily-summary" in table
    _fits(table)


def test_a_failed_step_names_itself_and_resume_finishes_the_run(tmp_path: Path) -> None:
    path = tmp_path / "flows.py"
    path.write_text(textwrap.dedent(FLOW))
    flag = tmp_path / "fail-once"
    flag.touch()
    code, out, err = _cli("run", f"{path}:flow")
    assert code == 1
    assert "step 'summarise' failed after 2 attempt(s)" in err and "warehouse is down" in err
    assert "↻ summarise" in err and "- report" in err  # retried, then the rest skipped
    assert "Traceback" not in out + err
    hint = next(line for line in out.splitlines() if "resume it with" in line)
    run_uuid = hint.split()[-1]
    code, out, _ = _cli("show", run_uuid, "--json")
    statuses = {s["step"]: s["status"] for s in json.loads(out)}
    assert statuses == {"load": "FINISHED", "summarise": "FAILED", "report": "SKIPPED"}

    flag.unlink()
    code, out, err = _cli("resume", run_uuid)
    assert code == 0, err
    assert "FINISHED pipeline 'daily-summary'" in out and "attempt 2" in out
    assert f"run {run_uuid}" in out
    assert "↺ load" in err and "reused from the earlier attempt" in err  # not run again
    assert "✓ summarise" in err and "✓ report" in err
    code, out, err = _cli("resume", run_uuid)
    assert code == 1 and "FINISHED already" in err


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "flows.py"
    path.write_text(textwrap.dedent(FLOW))
    for args, expected in (
        (("run", f"{path}:flow", "-p", "rows"), "KEY=VALUE"),
        (("run", f"{path}:flow", "-p", "nope=1"), "nope"),
        (("run", f"{path}:flow", "--executor", "gpu-farm"), "gpu-farm"),
        (("run", f"{tmp_path}/missing.py:flow"), "missing.py"),
        (("graph", "x", "--format", "png"), "--format must be text or mermaid"),
        (("cost", "--by", "team"), "'pipeline' or 'project'"),
        (("cost", "--since", "last tuesday"), "--since must be a duration"),
        (("show", "0123abcd"), "0123abcd"),
    ):
        code, out, err = _cli(*args)
        assert code != 0, args
        assert expected in err, (args, err)
        assert "Traceback" not in out + err
