"""`--project` on every project-scoped command group, on the store and through a server.

Each group shows only the chosen project's objects; a project that does not exist and
one the caller cannot see get the same one-line refusal, naming the caller's projects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.auth.test_projects_everywhere import feature_defs
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app
from loopstack.config import settings
from loopstack.store import open_stores

sklearn = pytest.importorskip("sklearn", reason="install loopstack[sklearn] to run this test")

#: (group, a command of it that lists what the project holds)
GROUPS = [
    ("experiments", ["list"]),
    ("runs", ["list"]),
    ("models", ["list"]),
    ("data", ["list"]),
    ("features", ["list"]),
    ("audit", ["log", "--limit", "1000"]),
]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def _fill_project_a(tmp_path: Path) -> dict[str, str]:
    """Projects a and b; in a, a run with a registered model, a dataset and a feature
    view. Returns, per group, a text only a's listing shows."""
    from sklearn.linear_model import LogisticRegression

    from loopstack.auth import create_project

    db = open_stores().db
    for name in ("a", "b"):
        create_project(db, name, actor="root")
    ls.set_project("a")
    X = pd.DataFrame({"f1": [0.0, 1.0, 2.0, 3.0], "f2": [1.0, 0.0, 1.0, 0.0]})
    clf = LogisticRegression().fit(X, [0, 0, 1, 1])
    with ls.start_run(experiment="exp-in-a", run_name="run-in-a", capture_env=False) as run:
        run.log_model(clf, name="model-in-a", sample_input=X.head(2))
    ls.register_dataset("data-in-a", X)
    ls.FeatureStore().apply(feature_defs(tmp_path, "view-in-a"))
    ls.set_project(None)
    return {
        "experiments": "exp-in-a",
        "runs": "run-in-a",
        "models": "model-in-a",
        "data": "data-in-a",
        "features": "view-in-a",
        "audit": f"run/{run.run_id}",
    }


def _one_line_refusal(result: Any) -> str:
    """The refusal's text; it must be one line, exit code 1, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return str(lines[0])


@pytest.mark.parametrize(("group", "command"), GROUPS, ids=[g for g, _ in GROUPS])
def test_every_group_acts_in_the_project_it_is_given(
    group: str, command: list[str], use_db: str, tmp_path: Path
) -> None:
    marker = _fill_project_a(tmp_path)[group]
    in_a = invoke(group, "--project", "a", *command)
    assert in_a.exit_code == 0, in_a.output
    assert marker in in_a.stdout
    in_b = invoke(group, "--project", "b", *command)
    assert in_b.exit_code == 0, in_b.output
    assert marker not in in_b.stdout
    if group != "audit":  # the whole log, with no project chosen
        assert marker not in invoke(group, *command).stdout  # the default project
    # the choice lasts one command line: the Python API is back in the default project
    assert settings().project is None

    refused = _one_line_refusal(invoke(group, "--project", "nope", *command))
    assert refused == (
        "error: no project named 'nope' that you can use; your projects: 'a', 'b', 'default'"
    )


def test_the_option_also_follows_the_command_where_it_did_before(
    use_db: str, tmp_path: Path
) -> None:
    marker = _fill_project_a(tmp_path)
    assert marker["models"] in invoke("models", "list", "--project", "a").stdout
    assert marker["features"] in invoke("features", "list", "--project", "a").stdout
    refused = _one_line_refusal(invoke("features", "list", "--project", "nope"))
    assert "no project named 'nope'" in refused


def test_through_a_server_a_project_not_mine_and_a_missing_one_answer_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from loopstack.auth import add_member, create_token, create_user

    marker = _fill_project_a(tmp_path)
    db = open_stores().db
    create_token(db, name="root", user="root")  # the first user is the admin
    create_user(db, "alice", actor="root")
    add_member(db, "a", "alice", "ml-engineer", actor="root")
    alice, _ = create_token(db, name="alice", user="alice")
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    url = request.getfixturevalue("live_server")  # started with auth on
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", url)
    monkeypatch.setenv("LOOPSTACK_TOKEN", alice)

    for group, command in GROUPS:
        answers = {}
        for name in ("b", "c"):  # b exists but alice is not in it; c does not exist
            text = _one_line_refusal(invoke(group, "--project", name, *command))
            answers[name] = text.replace(repr(name), "<project>")
        assert answers["b"] == answers["c"], group
        assert answers["b"] == (
            "error: no project named <project> that you can use; your projects: 'a'"
        ), group

    for group in ("experiments", "runs", "models", "audit"):  # the groups a server serves
        command = dict(GROUPS)[group]
        shown = invoke(group, "--project", "a", *command)
        assert shown.exit_code == 0, shown.output
        assert marker[group] in shown.stdout, group
    # alice is in no role in the default project: the same refusal, naming her projects
    refused = _one_line_refusal(invoke("runs", "list"))
    assert refused == "error: no project named 'default' that you can use; your projects: 'a'"
    monkeypatch.setenv("LOOPSTACK_PROJECT", "a")  # the environment chooses it as well
    assert marker["runs"] in invoke("runs", "list").stdout
