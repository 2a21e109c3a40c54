"""`plan_reproduction` / `reproduce`: a real git repository, real subprocesses, no mocks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import loopstack as ls
from loopstack.tracking import TrackingClient
from loopstack.tracking._reproduce import REPRODUCES_TAG, plan_reproduction, reproduce
from loopstack.tracking._reproduce_env import parse_packages, record_requirements

TRAIN = """\
import sys

import numpy as np

import loopstack as ls

data, lr = sys.argv[1], float(sys.argv[2])
with ls.start_run(experiment="repro", run_name="train", params={"lr": lr, "seed": 7}) as run:
    ls.log_input(data, name="train")
    table = np.loadtxt(data, delimiter=",", skiprows=1)
    x, y = table[:, :-1], table[:, -1]
    w = np.random.default_rng(7).normal(size=x.shape[1])
    for step in range(20):
        w -= lr * 2 * x.T @ (x @ w - y) / len(y)
        ls.log_metric("loss", float(np.mean((x @ w - y) ** 2)), step=step)
    ls.log_metric("w_norm", float(np.linalg.norm(w)))
    if "--noise" in sys.argv:
        ls.log_metric("noise", float(np.random.default_rng().random()))
    print("RUN_ID", run.run_id)
"""


@dataclass
class Project:
    repo: Path
    script: Path
    data: Path
    commit: str


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.strip()


def make_project(root: Path) -> Project:
    """A git repository with a training script, and a CSV outside it."""
    repo = root / "proj"
    repo.mkdir()
    git(repo, "init", "-q")
    script = repo / "train.py"
    script.write_text(TRAIN)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "train")
    data = root / "data" / "train.csv"
    data.parent.mkdir()
    lines = ["a,b,y"] + [
        f"{i % 7 / 7:.4f},{i % 3 / 3:.4f},{(i % 7) / 7 * 2 - i % 3 / 3:.4f}" for i in range(50)
    ]
    data.write_text("\n".join(lines) + "\n")
    return Project(repo, script, data, git(repo, "rev-parse", "HEAD"))


def run_original(project: Project, *extra: str) -> str:
    """Run the script as a user would (its own process, the test's LOOPSTACK_HOME)."""
    out = subprocess.run(
        [sys.executable, str(project.script), str(project.data), "0.1", *extra],
        cwd=project.repo,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("RUN_ID"))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


def test_the_plan_names_commit_entry_point_params_and_a_verified_dataset(project: Project) -> None:
    run_id = run_original(project)
    plan = plan_reproduction(run_id)
    assert plan.ready, plan.problems
    assert plan.commit == project.commit and not plan.dirty
    assert plan.repo == str(project.repo.resolve()) and plan.repo_is_local
    assert plan.entry_point == "train.py"
    assert plan.args == [str(project.data), "0.1"]
    assert plan.params == {"lr": "0.1", "seed": "7"}
    assert plan.packages.source == "tag" and "numpy" in plan.packages.names
    [ds] = plan.datasets
    assert (ds.name, ds.status, ds.source) == ("train", "ok", str(project.data.resolve()))
    assert set(plan.metrics) == {"loss", "w_norm"}
    assert not [w for w in plan.warnings if "uncommitted" in w]


def test_reproduce_in_this_interpreter_matches_and_tags_the_new_run(project: Project) -> None:
    run_id = run_original(project)
    report = reproduce(run_id, fresh_env=False)
    assert report.status == "matched", (report.problems, report.output_tail)
    assert report.ok and report.returncode == 0
    assert {m.key for m in report.metrics} == {"loss", "w_norm"}
    assert all(m.matches and m.abs_diff == 0 for m in report.metrics)
    assert report.differences == []
    new = TrackingClient().get_run(report.new_run_id or "")
    assert new.run_id != run_id
    assert new.tags[REPRODUCES_TAG] == run_id
    assert new.tags["mlflow.source.git.commit"] == project.commit
    assert new.tags["loopstack.git.dirty"] == "false"
    assert new.params == {"lr": "0.1", "seed": "7"}
    assert report.workdir is None  # the temporary checkout is gone


def _runs_in(experiment: str) -> int:
    return len(ls.search_runs(experiment))


def test_a_changed_dataset_is_named_and_nothing_runs(project: Project) -> None:
    run_id = run_original(project)
    project.data.write_text(project.data.read_text() + "0.5,0.5,0.5\n")
    plan = plan_reproduction(run_id)
    assert not plan.ready
    [problem] = plan.problems
    assert problem.startswith(
        f"dataset 'train' (sha256 {plan.datasets[0].digest[:12]}…) at "
        f"{project.data.resolve()}: content changed: now sha256 "
    )
    assert plan.missing_inputs == plan.datasets
    report = reproduce(run_id, fresh_env=False)
    assert report.status == "refused" and report.problems == [problem]
    assert report.new_run_id is None and _runs_in("repro") == 1


def test_a_missing_dataset_is_named(project: Project) -> None:
    run_id = run_original(project)
    project.data.unlink()
    report = reproduce(run_id, fresh_env=False)
    assert report.status == "refused"
    assert report.problems == [
        f"dataset 'train' (sha256 {report.plan.datasets[0].digest[:12]}…)"
        f" at {project.data.resolve()}: file missing"
    ]
    assert _runs_in("repro") == 1


def test_a_run_from_a_dirty_tree_warns_that_its_changes_are_lost(project: Project) -> None:
    project.script.write_text(project.script.read_text() + "# an uncommitted edit\n")
    run_id = run_original(project)
    plan = plan_reproduction(run_id)
    assert plan.dirty and plan.ready
    assert any(
        "uncommitted changes" in w and "cannot be restored" in w and project.commit[:12] in w
        for w in plan.warnings
    ), plan.warnings


def test_a_commit_in_no_repository_here_says_exactly_that(project: Project) -> None:
    run_id = run_original(project)
    shutil.rmtree(project.repo / ".git")
    plan = plan_reproduction(run_id)
    [problem] = plan.problems
    assert problem.startswith(f"commit {project.commit} is not in any git repository here")
    assert "recorded no remote URL" in problem
    report = reproduce(run_id, fresh_env=False)
    assert report.status == "refused" and report.problems == [problem]


def test_a_repository_named_explicitly_is_used(project: Project, tmp_path: Path) -> None:
    run_id = run_original(project)
    moved = tmp_path / "elsewhere"
    shutil.move(project.repo, moved)
    assert not plan_reproduction(run_id).ready
    plan = plan_reproduction(run_id, repo=moved)
    assert plan.repo == str(moved.resolve()) and plan.entry_point == "train.py", plan.problems


def test_a_metric_that_differs_is_reported(project: Project, tmp_path: Path) -> None:
    run_id = run_original(project, "--noise")
    report = reproduce(run_id, fresh_env=False, workdir=tmp_path / "work")
    assert report.status == "differs", (report.problems, report.output_tail)
    assert not report.ok
    assert [m.key for m in report.metrics if not m.matches] == ["noise"]
    assert report.workdir == str((tmp_path / "work").resolve())
    assert (tmp_path / "work" / "src" / "train.py").is_file()
    assert "$ " in (tmp_path / "work" / "reproduce.log").read_text()


def test_dry_run_plans_without_running(project: Project) -> None:
    run_id = run_original(project)
    report = reproduce(run_id, dry_run=True)
    assert report.status == "planned" and report.ok
    assert _runs_in("repro") == 1


def test_a_cut_package_list_drops_its_partial_last_line_and_says_so(project: Project) -> None:
    assert parse_packages("a==1\nb==2\nc==", truncated=True) == ["a==1", "b==2"]
    run_id = run_original(project)
    tag = "\n".join(f"pkg{i:04d}==1.0" for i in range(1000))[:8000]
    TrackingClient().set_tag(run_id, "loopstack.packages", tag)
    plan = plan_reproduction(run_id)
    assert plan.packages.truncated
    assert len(plan.packages.requirements) == tag.count("\n")
    assert any("cut at 8000 characters" in w for w in plan.warnings)


def test_the_full_requirements_artifact_wins_over_the_tag(project: Project) -> None:
    run_id = run_original(project)
    record_requirements(run_id)
    TrackingClient().set_tag(run_id, "loopstack.packages", "x" * 8000)
    plan = plan_reproduction(run_id)
    assert plan.packages.source == "artifact" and not plan.packages.truncated
    assert "numpy" in plan.packages.names


def test_an_in_memory_input_is_flagged_but_does_not_block() -> None:
    import pandas as pd

    with ls.start_run(experiment="mem") as run:
        ls.log_input(pd.DataFrame({"a": [1, 2]}), name="frame")
    plan = plan_reproduction(run.run_id)
    [ds] = plan.datasets
    assert ds.status == "in-memory" and not ds.blocking
    assert any(
        w.startswith("dataset 'frame'") and "in-memory dataframe" in w for w in plan.warnings
    )


@pytest.mark.slow
def test_reproduce_in_a_fresh_venv_with_the_recorded_packages(project: Project) -> None:
    """pip installs a small package set (what the script needs) from the local mirror."""
    from importlib import metadata

    from packaging.requirements import Requirement

    run_id = run_original(project)
    # Record only loopstack's own dependency closure, as a run in a lean environment would.
    wanted: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [("loopstack", frozenset())]
    while todo:
        name, extras = todo.pop()
        dist = metadata.distribution(name)
        key = dist.metadata["Name"].lower()
        if key in wanted and not extras:
            continue
        wanted[key] = f"{dist.metadata['Name']}=={dist.version}"
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(
                req.marker.evaluate({"extra": e}) for e in (extras or {""})
            ):
                todo.append((req.name, frozenset(req.extras)))
    wanted["not-a-real-package-xyz"] = "not-a-real-package-xyz==0.0.1"
    TrackingClient().set_tag(run_id, "loopstack.packages", "\n".join(sorted(wanted.values())))
    report = reproduce(run_id, fresh_env=True)
    assert report.status == "matched", (report.problems, report.output_tail)
    assert report.not_installed == ["not-a-real-package-xyz==0.0.1"]
    assert report.python and report.python != sys.executable
    assert any("loopstack" in n and "linked" in n for n in report.notes)
