"""Every list command at 80 and 120 columns: whole headers, whole values, one line per row;
--json, --csv, --columns; one empty sentence; option names whole in every --help."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.cells import cell_len
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app
from loopstack.registry import get_registry

LONG_NAME = "gradient-boosted-trees-with-a-rather-long-run-name"
USER = "ana.long-surname@example.com"
LONG_PARAM = "cosine-annealing-with-warm-restarts-every-ten-epochs"

LISTS: tuple[tuple[str, ...], ...] = (
    ("runs", "list"),
    ("experiments", "list"),
    ("data", "list"),
    ("features", "list"),
    ("models", "list"),
    ("models", "versions", "churn-prediction-model"),
    ("models", "requests"),
    ("deploy", "list"),
    ("deploy", "history", "churn-prediction-endpoint"),
    ("rollout", "list"),
    ("projects", "list"),
    ("token", "list"),
    ("users", "list"),
    ("audit", "log"),
    ("loop", "triggers"),
    ("loop", "status"),
)

#: the columns whose values may be cut with an ellipsis (names, descriptions, params...)
ABBREVIABLE = {
    "name",
    "description",
    "entities",
    "features",
    "owner",
    "aliases",
    "created_by",
    "user",
    "project",
    "display_name",
    "model",
    "requested_by",
    "decided_by",
    "comment",
    "arms",
    "actor",
    "updated_by",
    "trigger",
    "reason",
    "outcome",
    "watches",
    "pipeline",
    "endpoint",
}


def invoke(*args: str, width: int = 120) -> Any:  # click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})


def ok(*args: str, width: int = 120) -> str:
    result = invoke(*args, width=width)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def parse_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and the row cells of the one rich table in ``text``."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    under = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("└"))
    # one header line: a wrapped header would take two
    assert under - top == 2, "\n".join(lines[top : under + 1])
    header = [c.strip() for c in lines[top + 1].strip("┃").split("┃")]
    body = [[c.strip() for c in line.strip("│").split("│")] for line in lines[under + 1 : bottom]]
    return header, body


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs with long metric and param names, a dataset, a feature view, a model with two
    versions and an approval request, a project, a user and a token."""
    import pandas as pd

    monkeypatch.setenv("LOOPSTACK_USER", "alice")
    for i in range(3):
        with ls.start_run(
            experiment="churn-prediction-experiment",
            run_name=f"{LONG_NAME}-{i}",
            params={"learning_rate_schedule": LONG_PARAM, "n_estimators": 3000000},
        ):
            ls.log_metrics(
                {
                    "validation.accuracy": 0.912345 + i / 100,
                    "validation.loss_after_warmup": 1.2345e-5,
                    "rows_seen": 3e6,
                }
            )
    ls.register_dataset(
        "customer-orders-with-a-long-name",
        pd.DataFrame({"amount": [1.0, 2.5, 4.0] * 1000}),
        description="every order placed by a customer since the shop opened, deduplicated",
    )
    data = tmp_path / "stats.parquet"
    pd.DataFrame(
        {
            "driver_id": [1],
            "event_timestamp": [pd.Timestamp("2024-01-01")],
            "acceptance_rate_last_hour": [0.1],
            "conversion_rate_last_day": [0.2],
            "average_trip_length_km": [3.5],
        }
    ).to_parquet(data)
    defs = tmp_path / "defs.py"
    defs.write_text(
        textwrap.dedent(f"""
        from datetime import timedelta
        from loopstack import Entity, FeatureView, Field, FileSource
        driver = Entity("driver", join_keys=["driver_id"], owner="ana")
        stats = FeatureView("driver_hourly_statistics_view", entities=[driver],
                            source=FileSource({str(data)!r}),
                            schema=[Field("acceptance_rate_last_hour", "float64"),
                                    Field("conversion_rate_last_day", "float64"),
                                    Field("average_trip_length_km", "float64")],
                            ttl=timedelta(hours=2), owner="ana")
    """)
    )
    ok("features", "apply", str(defs))
    reg = get_registry(actor="alice")
    for _ in range(2):
        reg.create_model_version(
            "churn-prediction-model",
            source="runs:/x/model",
            files={"model.joblib": "ab" * 32},
            flavor="sklearn",
            signature={},
            requirements=[],
            onnx_max_abs_diff=1.5e-7,
        )
    reg.update_registered_model(
        "churn-prediction-model", description="who leaves within the next ninety days, weekly"
    )
    reg.request_promotion("churn-prediction-model", "2", alias="production", evidence={})
    endpoint = ls.deployments(actor=USER)
    endpoint.create("churn-prediction-endpoint", "churn-prediction-model/1")
    endpoint.canary("churn-prediction-endpoint", "churn-prediction-model/2", weight=5)
    endpoint.create("churn-prediction-rollout-endpoint", "churn-prediction-model/1")
    from loopstack.loop import CanaryStep, RolloutPlan, rollouts

    plan = RolloutPlan(steps=[CanaryStep(0.05, 600)], require_approval=False)
    rollouts(actor=USER).start(  # no real model to gate: forced past its gates
        "churn-prediction-rollout-endpoint",
        "churn-prediction-model",
        2,
        plan,
        force=True,
        reason="a listing fixture",
    )
    ok("projects", "create", "growth-analytics", "-d", "experiments of the growth team " * 3)
    ok("users", "create", USER, "--display-name", "Ana Long-Surname")
    ok("token", "create", "--name", "ci-nightly-retraining", "--user", USER)
    _fill_loop(tmp_path)


def _fill_loop(tmp_path: Path) -> None:
    """Two triggers with long names, and firings that ran, failed and were stopped."""
    from types import SimpleNamespace

    from loopstack.errors import GateFailed
    from loopstack.loop import Controller, Trigger, TriggerStore
    from loopstack.store import open_stores

    jobs = tmp_path / "retraining_pipelines_of_the_churn_team.py"
    jobs.write_text(
        "import loopstack as ls\n\n"
        "@ls.step\n"
        "def fit(rows: int = 1) -> int:\n"
        "    return rows\n\n"
        "@ls.pipeline\n"
        "def retrain_churn_model_on_fresh_data(rows: int = 1):\n"
        "    fit(rows=rows)\n"
    )
    entry = f"{jobs}:retrain_churn_model_on_fresh_data"
    store = TriggerStore(open_stores(), actor=USER)
    spec = {"endpoint": "churn-prediction-endpoint", "above": 0.3, "window": "36h"}
    store.add(Trigger("churn-inputs-drifted-beyond-tolerance", "drift", entry, spec=spec))
    store.add(Trigger("nightly-retraining", "cron", entry, spec={"schedule": "0 2 * * mon-fri"}))
    outcomes = [
        SimpleNamespace(run_uuid="a" * 32, status="FINISHED"),
        GateFailed("challenger accuracy 0.8123 does not beat the champion's 0.8345 by 0.01"),
    ]
    for result in outcomes:
        store.fire_manual("churn-inputs-drifted-beyond-tolerance", "drift_share " + "0.42 " * 12)

        def launch(entrypoint: str, params: dict, result: object = result) -> object:
            if isinstance(result, Exception):
                raise result
            return result

        Controller(open_stores(), holder="list-tables", launch=launch).step()


@pytest.mark.parametrize("width", [80, 120])
def test_every_list_fits_with_whole_headers_and_values(filled: None, width: int) -> None:
    for command in LISTS:
        out = ok(*command, width=width)
        for line in out.splitlines():
            assert cell_len(line.rstrip()) <= width, (command, line)
        records = json.loads(ok(*command, "--json"))
        assert records, command
        names = list(records[0])
        header, body = parse_table(out)
        assert set(header) <= set(names), (command, header)
        assert len(body) == len(records), (command, out)  # one line per row: nothing wrapped
        wide_header, wide_body = parse_table(ok(*command, "--wide", width=width))
        assert set(header) <= set(wide_header)
        for row, wide_row in zip(body, wide_body, strict=True):
            full = dict(zip(wide_header, wide_row, strict=True))
            for name, cell in zip(header, row, strict=True):
                if cell.endswith("…") and not full[name].endswith("…"):
                    assert name in ABBREVIABLE or name.startswith("params."), (command, name)
                    assert full[name].startswith(cell[:-1])
                else:
                    assert cell == full[name], (command, name, cell, full[name])
        hidden = len([n for n in wide_header if n not in header])
        if hidden:
            assert f"{hidden} more column" in out and "--wide" in out and "--columns" in out


def test_runs_list_shows_name_status_duration_at_80_and_metrics_at_120(filled: None) -> None:
    records = json.loads(ok("runs", "list", "--json"))
    narrow = ok("runs", "list", width=80)
    header, body = parse_table(narrow)
    assert header == ["run_id", "name", "status", "duration"]
    assert {r["run_id"] for r in records} == {row[0] for row in body}  # ids whole
    assert all(row[1].startswith("gradient-boosted") and row[2] == "FINISHED" for row in body)
    header, body = parse_table(ok("runs", "list", width=120))
    assert header[:4] == ["run_id", "name", "status", "duration"]
    assert "metrics.rows_seen" in header or "metrics.validation.accuracy" in header
    cells = dict(zip(header, body[0], strict=True))
    assert cells.get("metrics.rows_seen", "3,000,000") == "3,000,000"
    assert cells.get("metrics.validation.accuracy", "0.9323") in {"0.9123", "0.9223", "0.9323"}


def test_numbers_read_the_same_everywhere(filled: None) -> None:
    from loopstack.cli._output import fmt_value

    assert [fmt_value(v) for v in (3_000_000, 3e6, 0.912345, 1.2345e-05, 1234.5678, None)] == [
        "3,000,000",
        "3,000,000",
        "0.9123",
        "1.234e-05",
        "1,235",
        "-",
    ]
    header, body = parse_table(ok("data", "list"))
    assert dict(zip(header, body[0], strict=True))["rows"] == "3,000"
    assert "3,000 rows x 1 columns" in ok("data", "show", "customer-orders-with-a-long-name")
    header, body = parse_table(ok("runs", "list", "--columns", "run_id,metrics.rows_seen"))
    assert {row[1] for row in body} == {"3,000,000"}
    shown = ok("runs", "show", body[0][0]).splitlines()
    assert "3,000,000" in next(line for line in shown if "rows_seen" in line)


def test_json_csv_and_columns(filled: None) -> None:
    for command in LISTS:
        records = json.loads(ok(*command, "--json"))
        names = list(records[0])
        assert all(list(r) == names for r in records)
        parsed = list(csv.DictReader(io.StringIO(ok(*command, "--csv"))))
        assert len(parsed) == len(records) and list(parsed[0]) == names
        pick = [names[-1], names[0]]
        header, body = parse_table(ok(*command, "--columns", ",".join(pick), width=80))
        assert header == pick and len(body) == len(records)
        picked = json.loads(ok(*command, "--json", "--columns", ",".join(pick)))
        assert [list(r) for r in picked] == [pick] * len(records)
    run = json.loads(ok("runs", "list", "--json"))[0]
    assert run["metrics.rows_seen"] == 3e6  # raw, not formatted
    assert run["params.learning_rate_schedule"] == LONG_PARAM  # whole, not cut
    refused = invoke("runs", "list", "--columns", "run_id,nope")
    assert refused.exit_code == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "'nope'" in lines[0] and "run_id, name, status" in lines[0]


def test_an_empty_list_says_so_the_same_way() -> None:
    expected = {
        ("runs", "list"): "No runs match",
        ("data", "list"): "No datasets",
        ("features", "list"): "No feature views",
        ("models", "list"): "No registered models",
        ("models", "list", "--name-like", "zz%"): "No registered models match",
        ("models", "requests"): "No approval requests",
        ("deploy", "list"): "No deployments",
        ("token", "list"): "No tokens",
        ("users", "list"): "No users",
    }
    for command, sentence in expected.items():
        first = ok(*command).splitlines()[0]
        assert first == sentence or first.startswith(sentence + ";"), (command, first)
        assert json.loads(ok(*command, "--json")) == []
    ok("users", "create", "bob")  # a user with no role anywhere
    assert ok("projects", "list", "--user", "bob").strip() == "No projects match user 'bob'"


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command under ``group`` with its path (typer vendors its own click, so
    groups and options are recognised by what they have, not by class)."""
    found = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            found += _commands(cmd, (*path, name))
        else:
            found.append(((*path, name), cmd))
    return found


def test_every_option_name_is_whole_in_help_at_80_columns() -> None:
    root = typer.main.get_command(app)
    commands = _commands(root)
    assert len(commands) > 20
    for path, cmd in commands:
        text = ok(*path, "--help", width=80)
        for param in cmd.params:
            if param.param_type_name == "option" and not getattr(param, "hidden", False):
                for opt in (*param.opts, *param.secondary_opts):
                    assert opt in text, (path, opt, text)
