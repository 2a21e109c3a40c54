"""`loopstack models list|show|versions|alias|promote|approve|reject|requests|lineage`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app
from loopstack.registry import get_registry

COLUMNS = {"a": "float64", "b": "float64"}
FILES = {"model.joblib": "ab" * 32, "loopstack-model.json": "cd" * 32}


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, ["models", *args], env={"COLUMNS": "250"})


def rows(text: str) -> list[list[str]]:
    """The cells of every table row in ``text`` (headers included)."""
    lines = (line.replace("┃", "│") for line in text.splitlines())
    return [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.count("│") >= 2]


def row(text: str, first: str) -> list[str]:
    return next(r for r in rows(text) if r[0] == first)


def signature(columns: dict[str, str]) -> dict:
    return {
        "inputs": {
            "type": "columns",
            "columns": [{"name": k, "dtype": v} for k, v in columns.items()],
        },
        "output": {"type": "tensor", "dtype": "int64", "shape": [-1]},
    }


def register(
    name: str = "churn",
    *,
    actor: str = "alice",
    columns: dict | None = None,
    project_id: int = 0,
    **kw: object,
) -> int:
    reg = get_registry(actor=actor, project_id=project_id)
    v = reg.create_model_version(
        name,
        source=f"runs:/x/{name}",
        files=FILES,
        flavor="sklearn",
        signature=signature(columns or COLUMNS),
        requirements=["scikit-learn==1.5.0"],
        **kw,
    )  # type: ignore[arg-type]
    return v.version


@pytest.fixture
def churn(monkeypatch: pytest.MonkeyPatch) -> None:
    """churn v1 and v2 registered by alice (v2 with an onnx diff); the CLI acts as alice."""
    register(description="gradient boosting")
    register(onnx_max_abs_diff=1.5e-7)
    get_registry(actor="alice").update_registered_model("churn", description="who leaves")
    monkeypatch.setenv("LOOPSTACK_USER", "alice")


def test_list_shows_each_model_with_its_latest_version_and_aliases(churn: None) -> None:
    register("fraud")
    assert invoke("alias", "churn", "staging", "1").exit_code == 0
    result = invoke("list")
    assert result.exit_code == 0, result.output
    cells = row(result.stdout, "churn")
    assert cells[1:4] == ["2", "staging→1", "who leaves"]
    assert row(result.stdout, "fraud")[1:3] == ["1", "-"]
    only = invoke("list", "--name-like", "fr%").stdout
    assert "fraud" in only and "churn" not in only
    assert invoke("list", "--name-like", "zz%").stdout.strip() == "No registered models match"


def test_list_with_no_models_says_so() -> None:
    result = invoke("list")
    assert result.exit_code == 0 and result.stdout.strip() == "No registered models"


def test_show_prints_the_model_its_aliases_tags_and_versions(churn: None) -> None:
    get_registry(actor="alice").set_registered_model_tag("churn", "team", "growth")
    invoke("alias", "churn", "staging", "2")
    result = invoke("show", "churn")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert row(out, "description")[1] == "who leaves"
    assert row(out, "latest version")[1] == "2"
    assert row(out, "staging") == ["staging", "2"]
    assert row(out, "team") == ["team", "growth"]
    header = row(out, "version")
    assert header == [
        "version",
        "flavor",
        "run_id",
        "created_by",
        "created",
        "approval",
        "aliases",
        "digest",
        "onnx_diff",
    ]
    v2 = dict(zip(header, row(out, "2"), strict=True))
    digest = get_registry().get_model_version("churn", 2).digest
    assert v2["flavor"] == "sklearn" and v2["created_by"] == "alice"
    assert v2["approval"] == "none" and v2["aliases"] == "staging"
    assert v2["digest"] == digest[:12] and v2["onnx_diff"] == "1.5e-07"
    assert dict(zip(header, row(out, "1"), strict=True))["onnx_diff"] == "-"


def test_show_an_unknown_model_is_one_red_line() -> None:
    result = invoke("show", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no registered model named 'nope'"


def test_versions_lists_them_and_shows_one_in_full(churn: None) -> None:
    listed = invoke("versions", "churn")
    assert listed.exit_code == 0, listed.output
    assert [r[0] for r in rows(listed.stdout)[1:]] == ["2", "1"]

    result = invoke("versions", "churn", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    v1 = get_registry().get_model_version("churn", 1)
    assert row(out, "uri")[1] == "models:/churn/1"
    assert row(out, "digest")[1] == v1.digest
    assert row(out, "description")[1] == "gradient boosting"
    assert row(out, "1")[1:] == ["a", "float64"] and row(out, "2")[1:] == ["b", "float64"]
    assert row(out, "output")[1:] == ["int64", "(-1,)"]
    assert row(out, "scikit-learn==1.5.0")
    assert row(out, "model.joblib") == ["model.joblib", "ab" * 32]
    assert "lineage upstream (0): none" in out

    missing = invoke("versions", "churn", "9")
    assert missing.exit_code == 1 and "model 'churn' has no version 9" in missing.stderr


def test_alias_moves_deletes_and_keeps_its_history(churn: None) -> None:
    first = invoke("alias", "churn", "staging", "1", "--reason", "first try")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "churn@staging now points at version 1"
    moved = invoke("alias", "churn", "staging", "2")
    assert moved.stdout.strip() == "churn@staging now points at version 2 (was version 1)"
    gone = invoke("alias", "churn", "staging", "--delete")
    assert gone.exit_code == 0, gone.output
    assert gone.stdout.strip() == "deleted churn@staging (it pointed at version 2)"
    assert get_registry().get_registered_model("churn").aliases == {}

    history = invoke("alias", "churn", "--history", "staging")
    assert history.exit_code == 0, history.output
    header = row(history.stdout, "alias")
    assert header == ["alias", "from", "to", "actor", "time", "reason", "approval id"]
    moves = [dict(zip(header, r, strict=True)) for r in rows(history.stdout)[1:]]
    assert [(m["from"], m["to"], m["actor"], m["reason"]) for m in moves] == [
        ("-", "1", "alice", "first try"),
        ("1", "2", "alice", "-"),
        ("2", "-", "alice", "-"),
    ]
    assert (
        invoke("alias", "churn", "--history", "canary").stdout.strip()
        == "no alias moves for churn@canary"
    )


def test_alias_refuses_bad_combinations_and_signature_breaks(churn: None) -> None:
    assert "expected a VERSION" in invoke("alias", "churn", "staging").stderr
    assert "got no ALIAS" in invoke("alias", "churn").stderr
    assert "--delete takes no VERSION" in invoke("alias", "churn", "x", "1", "--delete").stderr
    register(columns={"a": "float64", "c": "str"})  # v3 drops b and needs c
    invoke("alias", "churn", "staging", "2")
    broken = invoke("alias", "churn", "staging", "3")
    assert broken.exit_code == 1
    assert "drops input(s) ['b']" in broken.stderr and "force" in broken.stderr
    assert get_registry().get_registered_model("churn").aliases == {"staging": 2}
    forced = invoke("alias", "churn", "staging", "3", "--force")
    assert forced.exit_code == 0, forced.output
    assert get_registry().get_registered_model("churn").aliases == {"staging": 3}


def test_production_moves_only_through_an_approval(churn: None) -> None:
    refused = invoke("alias", "churn", "production", "2")
    assert refused.exit_code == 1
    assert "'production' is a protected alias of 'churn'" in refused.stderr
    assert "loopstack models promote churn 2 --alias production" in refused.stderr
    assert get_registry().get_registered_model("churn").aliases == {}


def test_promote_then_another_user_approves(
    churn: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps({"auc": 0.93}))
    opened = invoke("promote", "churn", "2", "--evidence-file", str(evidence))
    assert opened.exit_code == 0, opened.output
    (request,) = get_registry().list_requests(name="churn")
    assert request.evidence["auc"] == 0.93 and request.requested_by == "alice"
    assert f"opened approval request {request.request_id}" in opened.stdout
    assert "move churn@production to version 2 — state pending" in opened.stdout

    pending = invoke("requests", "--state", "pending")
    cells = row(pending.stdout, request.request_id)
    assert cells[1:6] == ["churn", "2", "production", "pending", "alice"]

    own = invoke("approve", request.request_id)  # alice registered v2
    assert own.exit_code == 1
    assert "'alice' registered churn version 2 and cannot decide on its own promotion" in own.stderr
    assert get_registry().list_requests()[0].state == "pending"

    monkeypatch.setenv("LOOPSTACK_USER", "bob")
    approved = invoke("approve", request.request_id, "--comment", "eval looks good")
    assert approved.exit_code == 0, approved.output
    assert "state approved" in approved.stdout
    assert "approved by bob; churn@production now points at version 2" in approved.stdout
    assert get_registry().get_registered_model("churn").aliases == {"production": 2}
    assert row(invoke("versions", "churn").stdout, "2")[5] == "approved"

    history = invoke("alias", "churn", "--history").stdout
    assert row(history, "production")[1:] == [
        "-",
        "2",
        "bob",
        row(history, "production")[4],
        "eval looks good",
        request.request_id,
    ]
    done = invoke("requests", "--name", "churn", "--state", "approved").stdout
    assert row(done, request.request_id)[7] == "bob"
    assert row(done, request.request_id)[9] == "eval looks good"
    assert invoke("requests", "--state", "pending").stdout.strip() == "No approval requests match"
    again = invoke("approve", request.request_id)
    assert again.exit_code == 1 and "is already approved" in again.stderr


def test_reject_leaves_the_alias_where_it_was(churn: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke("promote", "churn", "1", "--alias", "production").exit_code == 0
    (request,) = get_registry().list_requests()
    monkeypatch.setenv("LOOPSTACK_USER", "bob")
    rejected = invoke("reject", request.request_id, "--comment", "auc too low")
    assert rejected.exit_code == 0, rejected.output
    assert "state rejected" in rejected.stdout
    assert get_registry().get_registered_model("churn").aliases == {}
    assert get_registry().list_requests()[0].comment == "auc too low"


def test_approving_an_unknown_request_names_it(churn: None) -> None:
    result = invoke("approve", "feedbeef")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no approval request with id 'feedbeef'"
    assert "'feedbeef'" in invoke("reject", "feedbeef").stderr


def test_an_auto_approve_policy_approves_at_once(churn: None, tmp_path: Path) -> None:
    from loopstack.auth import set_policy
    from loopstack.store import open_stores

    set_policy(open_stores().db, "default", {"auto_approve_when_gates_pass": True}, actor="root")
    evidence = tmp_path / "gates.json"
    evidence.write_text(json.dumps({"gates_passed": True}))
    result = invoke("promote", "churn", "2", "--evidence-file", str(evidence))
    assert result.exit_code == 0, result.output
    assert "state approved" in result.stdout
    assert "approved by policy; churn@production now points at version 2" in result.stdout
    assert get_registry().get_registered_model("churn").aliases == {"production": 2}


def test_promote_refuses_a_bad_evidence_file(churn: None, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    result = invoke("promote", "churn", "2", "--evidence-file", str(bad))
    assert result.exit_code == 1 and "is not valid JSON" in result.stderr
    bad.write_text("[1, 2]")
    assert (
        "must hold a JSON object; got list"
        in invoke("promote", "churn", "2", "--evidence-file", str(bad)).stderr
    )
    missing = invoke("promote", "churn", "2", "--evidence-file", str(tmp_path / "none.json"))
    assert missing.exit_code == 1 and "cannot read the evidence file" in missing.stderr
    assert get_registry().list_requests() == []


def test_requests_refuses_an_unknown_state() -> None:
    result = invoke("requests", "--state", "open")
    assert result.exit_code == 1
    assert (
        "--state must be one of pending, approved, applied, rejected, cancelled; got 'open'"
        in result.stderr
    )


def test_lineage_draws_runs_datasets_and_versions(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    data = tmp_path / "train.csv"
    frame.to_csv(data, index=False)
    with ls.start_run(experiment="churn") as run:
        ls.log_input(data, name="train-set")
        run.log_model(
            LogisticRegression().fit(frame, frame.a > 10), name="churn", sample_input=frame[:5]
        )
    register("churn-distilled", parents=[("churn", 1)])

    result = invoke("lineage", "churn", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0] == "model_version:churn/1"
    assert f"run:{run.run_id} (produced)" in out
    assert "train-set@" in out and "(input)" in out
    assert "model_version:churn-distilled/1 (parent)" in out
    assert "upstream (2)" in out and "downstream (1)" in out

    from_run = invoke("lineage", "--node", f"run:{run.run_id}")
    assert from_run.exit_code == 0, from_run.output
    assert "model_version:churn/1 (produced)" in from_run.stdout
    assert "model_version:churn-distilled/1 (parent)" in from_run.stdout

    full = invoke("versions", "churn", "1").stdout
    assert f"lineage upstream (2): run:{run.run_id}, train-set@" in full
    assert "lineage downstream (1): model_version:churn-distilled/1" in full

    assert "expected NAME VERSION or --node" in invoke("lineage", "churn").stderr
    bad = invoke("lineage", "--node", "pipeline:x")
    assert bad.exit_code == 1 and "expected a lineage node like 'run:<id>'" in bad.stderr


def test_project_option_and_environment_scope_every_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loopstack.auth import create_project
    from loopstack.store import open_stores

    fraud = create_project(open_stores().db, "fraud", actor="root")
    register("card-fraud", project_id=fraud.project_id)
    register("churn")
    assert "card-fraud" not in invoke("list").stdout
    scoped = invoke("list", "--project", "fraud").stdout
    assert "card-fraud" in scoped and "churn" not in scoped
    assert invoke("show", "churn", "--project", "fraud").exit_code == 1
    monkeypatch.setenv("LOOPSTACK_PROJECT", "fraud")
    assert "card-fraud" in invoke("versions", "card-fraud").stdout
    missing = invoke("list", "--project", "nope")
    assert missing.exit_code == 1
    assert "no project named 'nope' that you can use; your projects: 'default', 'fraud'" in (
        missing.stderr
    )


def test_through_a_live_server_with_tokens(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from loopstack.auth import add_member, create_token, create_user
    from loopstack.store import open_stores

    db = open_stores().db
    create_token(db, name="root", user="root")  # the first user is the admin
    # alice may approve in general, so only the author rule stops her approving her own
    for user, role in (("alice", "ml-engineer"), ("bob", "ml-engineer")):
        create_user(db, user, actor="root")
        add_member(db, "default", user, role, actor="root")
    alice, _ = create_token(db, name="alice", user="alice")
    bob, _ = create_token(db, name="bob", user="bob")
    register("churn", description="gbm")
    register("churn")
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    url = request.getfixturevalue("live_server")  # started with auth on
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", url)

    anonymous = invoke("list")
    assert anonymous.exit_code == 1 and "requires a bearer token" in anonymous.stderr

    monkeypatch.setenv("LOOPSTACK_TOKEN", alice)
    listed = invoke("list")
    assert listed.exit_code == 0, listed.output
    assert row(listed.stdout, "churn")[1:3] == ["2", "-"]
    shown = invoke("show", "churn")
    assert shown.exit_code == 0, shown.output
    assert row(shown.stdout, "2")[3] == "alice"
    one = invoke("versions", "churn", "1").stdout
    assert row(one, "model.joblib") == ["model.joblib", "ab" * 32]
    assert "'nope'" in invoke("list", "--project", "nope").stderr

    refused = invoke("alias", "churn", "production", "2")
    assert refused.exit_code == 1 and "protected alias" in refused.stderr
    opened = invoke("promote", "churn", "2")
    assert opened.exit_code == 0, opened.output
    request_id = opened.stdout.split("approval request ")[1].split(":")[0]
    own = invoke("approve", request_id)
    assert own.exit_code == 1
    assert "'alice' registered churn version 2 and cannot decide on its own promotion" in own.stderr

    monkeypatch.setenv("LOOPSTACK_TOKEN", bob)
    assert "no approval request with id 'feedbeef'" in invoke("approve", "feedbeef").stderr
    approved = invoke("approve", request_id, "--comment", "ship it")
    assert approved.exit_code == 0, approved.output
    assert "approved by bob; churn@production now points at version 2" in approved.stdout
    assert row(invoke("list").stdout, "churn")[2] == "production→2"
    history = invoke("alias", "churn", "--history", "production").stdout
    assert row(history, "production")[3] == "bob" and row(history, "production")[6] == request_id
    assert row(invoke("requests").stdout, request_id)[4] == "approved"
    tree = invoke("lineage", "churn", "2")
    assert tree.exit_code == 0 and tree.stdout.startswith("model_version:churn/2")
    node = invoke("lineage", "--node", "run:abc")
    assert node.exit_code == 1 and "no run with id 'abc'" in node.stderr
