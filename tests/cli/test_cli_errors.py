"""No traceback reaches a CLI user: every command, against a missing file, a corrupted
Parquet, an unreachable server and a bad token, ends in one ``error:`` line (or click's
usage box for a usage error) and a non-zero exit, or succeeds."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import typer.main
from tests.conftest import free_port
from typer._click import Context
from typer.testing import CliRunner

from loopstack.cli import app

#: sample arguments for every command (``{missing}`` and ``{corrupt}`` become paths);
#: a command missing here fails the test, so a new command is covered by it
ARGS: dict[str, list[str]] = {
    "experiments list": [],
    "runs list": [],
    "runs show": ["0123abcd"],
    "runs compare": ["0123abcd", "4567ef01"],
    "runs reproduce": ["0123abcd", "--dry-run"],
    "models list": [],
    "models show": ["churn"],
    "models versions": ["churn"],
    "models alias": ["churn", "staging", "1"],
    "models promote": ["churn", "1"],
    "models approve": ["abc"],
    "models reject": ["abc"],
    "models requests": [],
    "models lineage": ["churn", "1"],
    "models gates": ["churn", "1"],
    "deploy create": ["api", "--model", "churn/1"],
    "deploy show": ["api"],
    "deploy list": [],
    "deploy set": ["api", "--model", "churn@champion"],
    "deploy canary": ["api", "--model", "churn/2", "--weight", "5"],
    "deploy shadow": ["api", "--model", "churn/2"],
    "deploy ab": ["api", "--arm", "a=churn/1:50", "--arm", "b=churn/2:50"],
    "deploy bandit": ["api", "--arm", "a=churn/1", "--arm", "b=churn/2", "--strategy", "epsilon"],
    "deploy promote": ["api"],
    "deploy rollback": ["api", "--to", "1"],
    "deploy history": ["api"],
    "deploy enrich": ["api", "--mode", "degraded", "--default", "trips=0"],
    "deploy options": ["api", "--max-batch-size", "8"],
    "rollout start": ["api", "churn", "2", "--step", "0.05:60", "--guardrail", "error_rate<=0.02"],
    "rollout status": ["1"],
    "rollout list": [],
    "rollout approve": ["1"],
    "rollout pause": ["1"],
    "rollout resume": ["1"],
    "rollout promote": ["1"],
    "rollout rollback": ["1"],
    "rollout tick": [],
    "stream run": ["churn-api", "--source", "redis://127.0.0.1:1/0?stream=x"],
    "predict batch": ["models:/nope/1", "--input", "in.parquet", "--output", "out.parquet"],
    "features apply": ["{missing}"],
    "features delete": ["driver_stats"],
    "features list": [],
    "features show": ["driver_stats"],
    "features materialize": ["2024-01-01", "2024-02-01"],
    "features materialize-incremental": [],
    "features get": ["driver_stats:trips", "--entity", "driver_id=1"],
    "audit verify": ["--anchors"],
    "audit anchor": ["--to", "{missing}/anchors.jsonl"],
    "audit rotate-key": [],
    "audit log": [],
    "data register": ["d", "{corrupt}"],
    "data list": [],
    "data show": ["d"],
    "data profile": ["{corrupt}"],
    "data validate": ["{corrupt}", "--infer-from", "{missing}"],
    "monitor alerts": ["--state", "firing", "--endpoint", "api"],
    "monitor rules add": ["acc", "--metric", "accuracy", "--comparison", "<", "--threshold", "0.8"],
    "monitor rules remove": ["acc"],
    "monitor report": ["api", "--reference", "{corrupt}", "--out", "{missing}.html"],
    "monitor run": ["api", "--once", "--route", "nowhere"],
    "pipelines run": ["{missing}:flow", "-p", "rows=3"],
    "pipelines resume": ["0123abcd"],
    "pipelines list": ["--limit", "0"],
    "pipelines show": ["0123abcd"],
    "pipelines graph": ["nosuchmodule:flow"],
    "pipelines cost": ["--by", "team", "--since", "yesterday"],
    "loop run": ["--once"],
    "loop status": ["--limit", "5"],
    "loop triggers add": [
        "t",
        "--kind",
        "cron",
        "--pipeline",
        "{missing}:fn",
        "--schedule",
        "* * * * *",
    ],
    "loop triggers remove": ["t"],
    "loop triggers enable": ["t"],
    "loop triggers disable": ["t"],
    "loop triggers fire": ["t"],
    "token create": ["--name", "t", "--user", "u"],
    "token list": [],
    "token revoke": ["abc"],
    "projects create": ["p1"],
    "projects list": [],
    "projects show": ["p1"],
    "projects add-member": ["p1", "u"],
    "projects remove-member": ["p1", "u"],
    "projects policy": ["p1"],
    "users create": ["u"],
    "users list": [],
    "users disable": ["u"],
    "users enable": ["u"],
    # refused before it listens: no such model (port 1: refused too, unless root)
    "serve": ["--model", "models:/churn@champion", "--port", "1"],
}
#: start servers or print a report of their own: covered by their own tests
SKIP = {"server", "quickstart", "doctor", "demo"}
#: commands that must reach the server (the others may act on the local stores)
REMOTE = {
    "experiments list",
    "runs list",
    "runs show",
    "models list",
    "models show",
    "models gates",
    "deploy list",
    "deploy show",
    "data list",
    "features list",
    "audit log",
}


def _commands() -> list[str]:
    root = typer.main.get_command(app)
    ctx = Context(root)
    found = []

    def walk(cmd: object, path: list[str]) -> None:
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            found.append(" ".join(path))

    walk(root, [])
    return [c for c in found if c not in SKIP]


def test_every_command_has_sample_arguments() -> None:
    assert sorted(_commands()) == sorted(ARGS)


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    corrupt = tmp_path / "truncated.parquet"
    import pandas as pd

    pd.DataFrame({"a": range(1000), "b": [str(i) for i in range(1000)]}).to_parquet(corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:300])  # cut off: no footer
    return {"missing": str(tmp_path / "no-such-file.parquet"), "corrupt": str(corrupt)}


def _run(command: str, paths: dict[str, str], env: dict[str, str]) -> tuple[int, str, str]:
    args = [a.format(**paths) for a in ARGS[command]]
    result = CliRunner().invoke(app, [*command.split(), *args], env={"COLUMNS": "120", **env})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"`loopstack {command}` raised:\n{trace}")
    return result.exit_code, result.stdout, result.stderr


def _assert_one_line_error(command: str, code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err, f"{command}: {out}{err}"
    if code == 0:
        return
    if code == 2 and "Usage:" in err:  # click's usage error
        return
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{command}: {err!r}"


@pytest.mark.parametrize("command", sorted(ARGS))
def test_every_command_on_local_stores_with_bad_files(command: str, paths: dict) -> None:
    code, out, err = _run(command, paths, {})
    _assert_one_line_error(command, code, out, err)


def test_bad_files_name_the_file(paths: dict[str, str]) -> None:
    for command in ("data register", "data profile"):
        code, _, err = _run(command, paths, {})
        assert code == 1 and paths["corrupt"] in err, err
    code, _, err = _run("features apply", paths, {})
    assert code == 1 and "no-such-file.parquet" in err, err


def test_materialize_over_a_parquet_truncated_after_apply_names_the_view_and_file(
    tmp_path: Path,
) -> None:
    import pandas as pd

    import loopstack as ls

    data = tmp_path / "stats.parquet"
    pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [pd.Timestamp("2024-01-01")], "trips": [3]}
    ).to_parquet(data)
    view = ls.FeatureView(
        "driver_stats",
        entities=[ls.Entity("driver", join_keys=["driver_id"])],
        source=ls.FileSource(data),
        schema=[ls.Field("trips", "int64")],
    )
    ls.FeatureStore().apply([ls.Entity("driver", join_keys=["driver_id"]), view])
    data.write_bytes(data.read_bytes()[:100])  # cut off after apply: no footer
    code, out, err = _run("features materialize", {}, {"COLUMNS": "200"})
    _assert_one_line_error("features materialize", code, out, err)
    assert code == 1 and "'driver_stats'" in err and str(data) in err, err
    assert "driver_stats" in out  # the per-view table


@pytest.mark.parametrize("command", sorted(ARGS))
def test_every_command_against_an_unreachable_server(command: str, paths: dict) -> None:
    env = {
        "LOOPSTACK_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "LOOPSTACK_HTTP_RETRIES": "0",
    }
    code, out, err = _run(command, paths, env)
    _assert_one_line_error(command, code, out, err)
    if command in REMOTE:
        assert code == 1 and "cannot reach the loopstack server" in err, err


@pytest.mark.parametrize("command", sorted(ARGS))
def test_every_command_with_a_bad_token(
    command: str, paths: dict, viewer_server: tuple[str, str, str]
) -> None:
    url = viewer_server[0]
    env = {"LOOPSTACK_TRACKING_URI": url, "LOOPSTACK_TOKEN": "ls_not-a-token"}
    code, out, err = _run(command, paths, env)
    _assert_one_line_error(command, code, out, err)
    if command in REMOTE:
        assert code == 1 and "token" in err, err
