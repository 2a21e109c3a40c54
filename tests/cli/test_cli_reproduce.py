"""`loopstack runs reproduce`: the plan, the comparison table, and the exit code."""

from __future__ import annotations

from pathlib import Path

from tests.tracking.test_reproduce import make_project, run_original
from typer.testing import CliRunner

from loopstack.cli import app


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    run_id = run_original(project)
    result = invoke("runs", "reproduce", run_id, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"reproducing run {run_id}" in out
    assert project.commit in out and "train.py" in out
    assert "lr" in out and "0.1" in out
    train = next(line for line in out.splitlines() if line.startswith("│ train "))
    assert "ok" in train and str(project.data.resolve()) in train
    assert "dry run: the plan is complete" in out
    assert "metrics:" not in out


def test_reproduce_prints_the_comparison_and_exits_0_when_metrics_match(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    run_id = run_original(project)
    result = invoke("runs", "reproduce", run_id, "--reuse-env")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "checking out commit" in out and "running python train.py" in out
    assert f"metrics: {run_id} vs " in out
    for key in ("loss", "w_norm"):
        line = next(line for line in out.splitlines() if f"│ {key} " in line)
        assert line.rstrip().rstrip("│").strip().endswith("yes")
    assert "reproduced: every metric matches" in out


def test_a_changed_dataset_refuses_naming_it_with_exit_1(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    run_id = run_original(project)
    project.data.write_text("a,b,y\n1,2,3\n")
    result = invoke("runs", "reproduce", run_id, "--reuse-env")
    assert result.exit_code == 1
    assert "missing: dataset 'train'" in result.stderr
    assert "content changed: now sha256" in result.stderr
    assert "nothing was run" in result.stderr
    assert "metrics:" not in result.stdout


def test_a_differing_metric_exits_1_and_names_it(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    run_id = run_original(project, "--noise")
    result = invoke("runs", "reproduce", run_id, "--reuse-env")
    assert result.exit_code == 1, result.output
    noise = next(line for line in result.stdout.splitlines() if "│ noise " in line)
    assert "NO" in noise
    assert "not reproduced: 1 metric(s) differ: noise" in result.stdout
    # A generous tolerance accepts it (the noise is in [0, 1)).
    loose = invoke("runs", "reproduce", run_id, "--reuse-env", "--atol", "1")
    assert loose.exit_code == 0, loose.output
