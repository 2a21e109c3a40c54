"""`loopstack experiments list`, `runs list`, `runs show`, `runs compare`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@dataclass
class Demo:
    good: str
    bad: str
    other: str


@pytest.fixture
def demo(tmp_path: Path) -> Demo:
    """Two runs in 'churn' (auc 0.93 and 0.81) and one in 'fraud'."""
    report = tmp_path / "report.txt"
    report.write_text("all good")
    with ls.start_run(
        experiment="churn", run_name="gbm-deep", params={"model": "gbm", "depth": 8, "seed": 1}
    ) as run:
        for step, auc in enumerate([0.88, 0.93]):
            ls.log_metric("auc", auc, step=step)
        ls.log_metric("loss", 0.25)
        ls.log_input(tmp_path / "report.txt", name="train-set", context="training")
        ls.log_artifact(report, "reports")
        good = run.run_id
    with ls.start_run(
        experiment="churn", run_name="linear", params={"model": "linear", "depth": 8, "seed": 1}
    ) as run:
        ls.log_metric("auc", 0.81)
        ls.log_metric("loss", 0.4)
        bad = run.run_id
    with ls.start_run(experiment="fraud", run_name="other", params={"model": "rf"}) as run:
        ls.log_metric("recall", 0.5)
        other = run.run_id
    return Demo(good, bad, other)


def test_experiments_list_shows_every_experiment_with_its_run_count(demo: Demo) -> None:
    result = invoke("experiments", "list")
    assert result.exit_code == 0, result.output
    lines = {
        line.split("│")[2].strip(): line
        for line in result.stdout.splitlines()
        if line.count("│") >= 5
    }
    assert set(lines) == {"Default", "churn", "fraud"}
    assert lines["churn"].split("│")[5].strip() == "2"
    assert lines["fraud"].split("│")[5].strip() == "1"
    assert "active" in lines["churn"]


def test_experiments_list_refuses_an_unknown_view() -> None:
    result = invoke("experiments", "list", "--view", "archived")
    assert result.exit_code == 1
    assert "error: --view must be one of active, deleted, all; got 'archived'" in result.stderr


def test_runs_list_shows_runs_with_their_metrics_and_params(demo: Demo) -> None:
    result = invoke("runs", "list", "--experiment", "churn")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert demo.good in out and demo.bad in out and demo.other not in out
    assert "metrics.auc" in out and "params.model" in out
    good_line = next(line for line in out.splitlines() if demo.good in line)
    assert "gbm-deep" in good_line and "FINISHED" in good_line
    assert "0.93" in good_line and "gbm" in good_line


def test_runs_list_without_an_experiment_covers_every_active_one(demo: Demo) -> None:
    out = invoke("runs", "list").stdout
    assert all(r in out for r in (demo.good, demo.bad, demo.other))


def test_runs_list_filters_and_orders(demo: Demo) -> None:
    result = invoke("runs", "list", "-e", "churn", "--filter", "metrics.auc > 0.9")
    assert result.exit_code == 0, result.output
    assert demo.good in result.stdout and demo.bad not in result.stdout

    result = invoke("runs", "list", "-e", "churn", "--order-by", "metrics.auc ASC")
    assert result.stdout.index(demo.bad) < result.stdout.index(demo.good)
    result = invoke(
        "runs", "list", "-e", "churn", "--order-by", "metrics.auc DESC", "--max-results", "1"
    )
    assert demo.good in result.stdout and demo.bad not in result.stdout
    assert "1 run" in result.stdout


def test_runs_list_by_experiment_id(demo: Demo) -> None:
    exp_id = ls.TrackingClient().get_experiment_by_name("fraud").experiment_id
    result = invoke("runs", "list", "--experiment", exp_id)
    assert demo.other in result.stdout and demo.good not in result.stdout


def test_runs_list_keeps_the_columns_that_fit_and_counts_the_rest(tmp_path: Path) -> None:
    with ls.start_run(experiment="wide", params={f"p{i}": i for i in range(10)}) as run:
        ls.log_metrics({f"m{i}": i / 10 for i in range(10)})
    result = CliRunner().invoke(
        app, ["runs", "list", "-e", "wide", "--order-by", "metrics.m9 DESC"], env={"COLUMNS": "120"}
    )
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "run_id" in line)
    shown = [cell.strip() for cell in header.strip("┃").split("┃")]
    # the key being ordered by comes first among the metrics
    assert shown[:5] == ["run_id", "name", "status", "duration", "metrics.m9"]
    assert "params.p0" not in shown  # params come after every metric and the start time
    hidden = 25 - len(shown)  # run_id, name, status, duration, 10 metrics, start, 10 params
    assert f"{hidden} more columns (--wide shows all, --columns picks)" in result.stdout
    assert run.run_id in result.stdout


def test_runs_list_errors(demo: Demo) -> None:
    result = invoke("runs", "list", "--experiment", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no experiment named 'nope'"
    result = invoke("runs", "list", "--filter", "metrics.auc >>> 1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_runs_list_with_nothing_to_show() -> None:
    result = invoke("runs", "list")
    assert result.exit_code == 0
    assert "No runs match" in result.stdout


def test_runs_show_prints_everything_about_a_run(demo: Demo) -> None:
    result = invoke("runs", "show", demo.good)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"run {demo.good}" in out
    for expected in (
        "gbm-deep",
        "churn",
        "FINISHED",
        "model",
        "gbm",
        "depth",
        "auc",
        "0.93",
        "loss",
        "0.25",
        "train-set",
        "training",
        "reports/report.txt",
        "mlflow.runName",
    ):
        assert expected in out, expected
    auc_line = next(line for line in out.splitlines() if "│ auc" in line)
    assert "0.93" in auc_line and "│    1 │" in auc_line  # latest value and its step
    # the package list is long: hidden unless asked for
    assert "typer==" not in out
    assert "loopstack.packages (use --all)" in out

    full = invoke("runs", "show", demo.good, "--all").stdout
    assert "typer==" in full


def test_runs_show_an_unknown_run_is_one_red_line() -> None:
    result = invoke("runs", "show", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no run with id 'nope'"
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_runs_compare_marks_the_rows_that_differ(demo: Demo) -> None:
    result = invoke("runs", "compare", demo.good, demo.bad)
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[2].strip(): line
        for line in result.stdout.splitlines()
        if line.count("│") >= 4
    }
    assert demo.good in result.stdout and demo.bad in result.stdout
    assert "gbm" in rows["params.model"] and "linear" in rows["params.model"]
    assert rows["params.model"].split("│")[1].strip() == "*"
    assert rows["metrics.auc"].split("│")[1].strip() == "*"
    assert "0.93" in rows["metrics.auc"] and "0.81" in rows["metrics.auc"]
    assert rows["params.depth"].split("│")[1].strip() == ""  # same value: not marked
    assert rows["params.seed"].split("│")[1].strip() == ""

    only = invoke("runs", "compare", demo.good, demo.bad, "--only-diff").stdout
    assert "params.model" in only and "params.depth" not in only


def test_runs_compare_a_key_missing_from_one_run(demo: Demo) -> None:
    result = invoke("runs", "compare", demo.good, demo.other)
    rows = {
        line.split("│")[2].strip(): line
        for line in result.stdout.splitlines()
        if line.count("│") >= 4
    }
    assert rows["metrics.recall"].split("│")[1].strip() == "*"
    assert "0.5" in rows["metrics.recall"] and "-" in rows["metrics.recall"]


def test_runs_compare_needs_two_existing_runs(demo: Demo) -> None:
    result = invoke("runs", "compare", demo.good)
    assert result.exit_code == 1
    assert "expected at least two run ids" in result.stderr
    result = invoke("runs", "compare", demo.good, "missing")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no run with id 'missing'"


def test_runs_commands_work_through_a_server(
    demo: Demo, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", live_server)
    result = invoke("runs", "list", "-e", "churn", "--filter", "metrics.auc > 0.9")
    assert result.exit_code == 0, result.output
    assert demo.good in result.stdout and demo.bad not in result.stdout
    show = invoke("runs", "show", demo.good)
    assert show.exit_code == 0, show.output
    assert "reports/report.txt" in show.stdout and "0.93" in show.stdout
    exps = invoke("experiments", "list")
    assert exps.exit_code == 0 and "churn" in exps.stdout
    missing = invoke("runs", "show", "nope")
    assert missing.exit_code == 1 and "error: no run with id 'nope'" in missing.stderr
