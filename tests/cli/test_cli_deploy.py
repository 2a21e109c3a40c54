"""`loopstack deploy create|show|list|set|canary|shadow|ab|bandit|promote|rollback|history|
options|enrich`,
on the local stores and through a live server with auth on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app
from loopstack.registry import get_registry


def invoke(*args: str, env: dict[str, str] | None = None):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, ["deploy", *args], env={"COLUMNS": "250", **(env or {})})


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def rows(text: str) -> list[list[str]]:
    lines = (line.replace("┃", "│") for line in text.splitlines())
    return [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.count("│") >= 2]


@pytest.fixture
def churn(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Model ``churn`` with versions 1-3 (alias ``champion`` on 2); the CLI acts as bob."""
    reg = get_registry(actor="alice")
    for _ in range(3):
        reg.create_model_version("churn", source="runs:/x/model", files={"m.bin": "ab" * 32})
    reg.set_alias("churn", "champion", 2)
    monkeypatch.setenv("LOOPSTACK_USER", "bob")
    yield


def test_the_rollout_verbs_and_history(churn: None) -> None:
    out = ok("create", "churn-api", "--model", "churn@champion")
    assert "created churn-api" in out and [
        "blue",
        "churn@champion",
        "2",
        "primary",
        "100%",
    ] in rows(out)
    out = ok("set", "churn-api", "--model", "churn/3")
    assert ["green", "churn/3", "3", "primary", "100%"] in rows(out)
    assert ["blue", "churn@champion", "2", "standby", "0%"] in rows(out)
    out = ok("canary", "churn-api", "--model", "churn/1", "--weight", "5")
    assert ["canary", "churn/1", "1", "canary", "5%"] in rows(out)
    assert ["green", "churn/3", "3", "primary", "95%"] in rows(out)
    ok("promote", "churn-api")
    ok("shadow", "churn-api", "--model", "churn/2")
    out = ok("ab", "churn-api", "--arm", "a=churn/1:50", "--arm", "b=churn/2:50")
    assert "policy ab" in out
    out = ok(
        "bandit", "churn-api", "--arm", "a=churn/1", "--arm", "b=churn/3", "--strategy", "epsilon"
    )
    assert "policy bandit (epsilon=0.1, strategy=epsilon)" in out
    ls.deployments().record_reward("churn-api", "b", 1.0)
    shown = ok("show", "churn-api")
    assert ["b", "1", "1.0000", "2", "1"] in rows(shown)  # pulls, mean, alpha, beta
    out = ok("rollback", "churn-api", "--to", "2")
    assert "rolled churn-api back to revision 2" in out and "revision 8" in out
    history = json.loads(ok("history", "churn-api", "--json"))
    assert [(h["revision"], h["action"], h["actor"]) for h in history] == [
        (1, "create", "bob"),
        (2, "set", "bob"),
        (3, "canary", "bob"),
        (4, "promote", "bob"),
        (5, "shadow", "bob"),
        (6, "ab", "bob"),
        (7, "bandit", "bob"),
        (8, "rollback", "bob"),
    ]
    assert history[7]["arms"] == history[1]["arms"]
    listed = json.loads(ok("list", "--json"))
    assert [(d["name"], d["policy"], d["revision"]) for d in listed] == [
        ("churn-api", "blue-green", 8)
    ]
    assert ok("list", "--csv").splitlines()[0] == (
        "name,policy,stage,revision,arms,updated_by,updated"
    )


def test_errors_are_one_line_naming_the_problem(churn: None) -> None:
    assert ok("list").strip() == "No deployments"
    for args, message in (
        (("create", "api", "--model", "churn@nope"), "model 'churn' has no alias 'nope'"),
        (("create", "api", "--model", "churn"), "MODEL@ALIAS (churn@champion)"),
        (("show", "ghost"), "no deployment named 'ghost'"),
        (
            ("create", "prod", "--model", "churn/3", "--stage", "production"),
            "churn version 3 is not approved for production",
        ),
        (("ab", "ghost", "--arm", "a=churn/1"), "an --arm is NAME=MODEL:WEIGHT (a=churn/3:50)"),
    ):
        result = invoke(*args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1, (args, result.output)
        assert lines[0].startswith("error: ") and message in lines[0], (args, lines)
    ok("create", "api", "--model", "churn/1")
    refused = invoke("ab", "api", "--arm", "a=churn/1:60", "--arm", "b=churn/2:60")
    assert refused.exit_code == 1 and "must sum to 100; got 120" in refused.stderr


def test_through_a_server_a_viewer_reads_and_is_refused_changes(
    churn: None, viewer_server: tuple[str, str, str]
) -> None:
    url, root, viewer = viewer_server
    as_root = {"LOOPSTACK_TOKEN": root}
    ok("create", "api", "--model", "churn/1", env=as_root)
    ok("canary", "api", "--model", "churn/2", "--weight", "10", env=as_root)
    as_viewer = {"LOOPSTACK_TOKEN": viewer}
    assert json.loads(ok("list", "--json", env=as_viewer))[0]["revision"] == 2
    assert [h["actor"] for h in json.loads(ok("history", "api", "--json", env=as_viewer))] == [
        "root",
        "root",
    ]
    refused = invoke("promote", "api", env=as_viewer)
    assert refused.exit_code == 1 and "error: " in refused.stderr and "viewer" in refused.stderr
    assert "deployment api (revision 2)" in ok("show", "api", env=as_viewer)


def test_serving_options_set_cleared_and_refused(churn: None) -> None:
    ok("create", "api", "--model", "churn/1")
    out = ok("options", "api", "--max-batch-size", "8", "--batch-latency-ms", "5")
    assert "api serving options: batch_latency_ms=5.0, max_batch_size=8" in out
    assert ls.deployments().get("api").options == {"max_batch_size": 8, "batch_latency_ms": 5.0}
    out = ok("options", "api", "--clear", "batch_latency_ms", "--max-queue", "10")
    assert ls.deployments().get("api").options == {"max_batch_size": 8, "max_queue": 10}
    for args, message in [
        ((), "nothing to set"),
        (("--clear", "batch_size"), "unknown serving option(s) ['batch_size']"),
        (("--clear", "max_queue", "--max-queue", "3"), "--clear max_queue and a value"),
    ]:
        result = invoke("options", "api", *args)
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert ls.deployments().get("api").revision == 3  # the refusals changed nothing
