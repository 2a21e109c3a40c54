"""`loopstack token create / list / revoke`."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from loopstack.auth import list_tokens, verify_token
from loopstack.cli import app
from loopstack.store import open_stores


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_create_list_revoke() -> None:
    result = invoke("token", "create", "--name", "ci", "--user", "alice")
    assert result.exit_code == 0, result.output
    secret = re.search(r"\blst_[A-Za-z0-9_\-]+", result.stdout).group(0)
    assert "shown only once" in result.stdout
    principal = verify_token(open_stores().db, secret)
    assert principal is not None and principal.user == "alice"
    token_id = principal.token_id
    assert token_id in result.stdout

    listed = invoke("token", "list")
    assert listed.exit_code == 0
    line = next(line for line in listed.stdout.splitlines() if token_id in line)
    assert "ci" in line and "alice" in line and "active" in line
    assert secret not in listed.stdout  # only the prefix is ever shown again
    assert secret[:10] in line

    revoked = invoke("token", "revoke", token_id)
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked token {token_id}" in revoked.stdout
    assert verify_token(open_stores().db, secret) is None
    line = next(line for line in invoke("token", "list").stdout.splitlines() if token_id in line)
    assert "revoked" in line and "active" not in line


def test_create_defaults_the_user(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("LOOPSTACK_USER", "bob")
    assert invoke("token", "create", "--name", "laptop").exit_code == 0
    [info] = list_tokens(open_stores().db)
    assert (info.name, info.user) == ("laptop", "bob")


def test_errors() -> None:
    result = invoke("token", "revoke", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no active token with id 'nope'"
    result = invoke("token", "create", "--name", "")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: a token needs a name and a user")
    assert invoke("token", "create").exit_code == 2  # --name is required: a usage error


def test_list_with_no_tokens() -> None:
    result = invoke("token", "list")
    assert result.exit_code == 0
    assert "No tokens" in result.stdout
