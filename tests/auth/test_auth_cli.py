"""`loopstack projects ...`, `loopstack users ...` and `loopstack token create --project`."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import loopstack.auth
from loopstack.auth import Role, get_policy, get_user, list_tokens, members, verify_token
from loopstack.cli import app
from loopstack.store import audit
from loopstack.store.metadata import Database, open_database


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@pytest.fixture
def cli_db(use_db: str, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("LOOPSTACK_USER", "root")
    return open_database(use_db)


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_public_names_are_sorted_and_resolve() -> None:
    assert loopstack.auth.__all__ == sorted(loopstack.auth.__all__)
    for name in loopstack.auth.__all__:
        assert getattr(loopstack.auth, name) is not None, name


def test_users_commands(cli_db: Database) -> None:
    assert "No users" in ok("users", "list")
    assert "created global admin root" in ok("users", "create", "root", "--admin")
    assert "created user ana" in ok("users", "create", "ana", "--display-name", "Ana Lima")
    listed = ok("users", "list")
    ana = next(line for line in listed.splitlines() if "ana" in line and "Ana Lima" in line)
    assert "active" in ana
    root = next(line for line in listed.splitlines() if " root " in f" {line} ")
    assert "yes" in root

    assert "disabled user ana" in ok("users", "disable", "ana")
    assert get_user(cli_db, "ana").disabled
    assert "disabled" in next(line for line in ok("users", "list").splitlines() if "ana" in line)
    assert "enabled user ana" in ok("users", "enable", "ana")
    assert not get_user(cli_db, "ana").disabled

    assert fails("users", "create", "ana") == "error: a user named 'ana' already exists"
    assert "user name" in fails("users", "create", "bad name")
    assert fails("users", "disable", "ghost") == "error: no user named 'ghost'"
    assert "last enabled admin" in fails("users", "disable", "root")
    actions = [e["action"] for e in audit.events(cli_db, object_type="user")]
    assert actions == ["user.create", "user.create", "user.disable", "user.enable"]
    assert {e["actor"] for e in audit.events(cli_db, object_type="user")} == {"root"}


def test_projects_commands(cli_db: Database) -> None:
    ok("users", "create", "ana")
    ok("users", "create", "ben")
    assert "created project fraud (id 1)" in ok(
        "projects", "create", "fraud", "-d", "card fraud models"
    )
    listed = ok("projects", "list")
    assert re.search(r"\b1\s.*fraud.*card fraud models", listed)
    assert "default" in listed
    assert "No projects match user 'ana'" in ok("projects", "list", "--user", "ana")

    assert "ana is now data-scientist in project fraud" in ok(
        "projects", "add-member", "fraud", "ana", "--role", "data-scientist"
    )
    ok("projects", "add-member", "fraud", "ben", "-r", "viewer")
    ok("projects", "add-member", "fraud", "ben", "-r", "ml-engineer")
    assert [(m.user, m.role) for m in members(cli_db, "fraud")] == [
        ("ana", Role.DATA_SCIENTIST),
        ("ben", Role.ML_ENGINEER),
    ]
    shown = ok("projects", "show", "fraud")
    assert "project fraud (id 1)" in shown and "card fraud models" in shown
    assert re.search(r"ben\s.*ml-engineer", shown)
    assert "protected_aliases: production" in shown
    assert "fraud" in ok("projects", "list", "--user", "ana")

    assert "removed ben from project fraud" in ok("projects", "remove-member", "fraud", "ben")
    assert [m.user for m in members(cli_db, "fraud")] == ["ana"]

    assert "allow_self_approval: false" in ok("projects", "policy", "fraud")
    out = ok(
        "projects",
        "policy",
        "fraud",
        "--self-approval",
        "--protected-aliases",
        "production,champion",
        "--required-evidence",
        "eval_report",
    )
    assert "updated the approval policy" in out and "allow_self_approval: true" in out
    policy = get_policy(cli_db, "fraud")
    assert policy.protected_aliases == ["production", "champion"]
    assert policy.allow_self_approval and policy.required_evidence == ["eval_report"]
    ok("projects", "policy", "fraud", "--no-self-approval", "--protected-aliases", "")
    policy = get_policy(cli_db, "fraud")
    assert not policy.allow_self_approval and policy.protected_aliases == []
    assert policy.required_evidence == ["eval_report"]  # untouched fields stay

    before = len(audit.events(cli_db, limit=100_000))
    assert "'owner'" in fails("projects", "add-member", "fraud", "ana", "--role", "owner")
    assert (
        fails("projects", "add-member", "fraud", "ghost", "--role", "viewer")
        == "error: no user named 'ghost'"
    )
    assert fails("projects", "show", "nope") == "error: no project with name 'nope'"
    assert "already exists" in fails("projects", "create", "fraud")
    assert "project name" in fails("projects", "create", "Fraud")
    assert "not a member" in fails("projects", "remove-member", "fraud", "ben")
    assert "'protected_aliases'" in fails(
        "projects", "policy", "fraud", "--protected-aliases", "bad alias"
    )
    assert len(audit.events(cli_db, limit=100_000)) == before


def test_token_create_with_a_project(cli_db: Database) -> None:
    ok("users", "create", "root", "--admin")
    ok("users", "create", "ana")
    ok("projects", "create", "fraud")
    ok("projects", "add-member", "fraud", "ana", "--role", "ml-engineer")
    out = ok("token", "create", "--name", "ci", "--user", "ana", "--project", "fraud")
    assert "only in project 'fraud'" in out
    secret = re.search(r"\blst_[A-Za-z0-9_\-]+", out).group(0)
    principal = verify_token(cli_db, secret)
    assert principal is not None and principal.project_id == 1 and principal.user == "ana"
    line = next(line for line in ok("token", "list").splitlines() if principal.token_id in line)
    assert "fraud" in line
    ok("token", "create", "--name", "all", "--user", "ana")
    assert "(all)" in next(line for line in ok("token", "list").splitlines() if " all " in line)
    assert "holds no role in project 'default'" in fails(
        "token", "create", "--name", "x", "--user", "ana", "--project", "default"
    )
    assert fails("token", "create", "--name", "x", "--user", "ghost") == (
        "error: no user named 'ghost'; create it first with `loopstack users create ghost`"
    )
    assert len(list_tokens(cli_db)) == 2
