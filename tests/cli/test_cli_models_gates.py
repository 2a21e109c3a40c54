"""`loopstack models gates MODEL VERSION`: real gates, evaluated on real iris models and
recorded on their versions, read back in an 80-column table (the deciding numbers of
each gate, failed gates named) and as JSON; `loop status` names in full why a firing
stopped at its gates; an unknown model or version is one error line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tests.loop.rollout_models import Models, gated_versions, record_real_gates
from typer.testing import CliRunner

from loopstack.cli import app
from loopstack.loop import GateReport, gate_report


def cli(*args: str, width: int = 80) -> tuple[int, str, str]:
    got = CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})
    assert got.exception is None or isinstance(got.exception, SystemExit), got.exception
    return got.exit_code, got.stdout, got.stderr


@pytest.fixture
def models(use_db: str) -> Models:
    """iris v1 (production, no gates), v2 (gates passed), v3 (one gate of three failed)."""
    return gated_versions()


def _fits(out: str, width: int = 80) -> None:
    assert all(len(line) <= width for line in out.splitlines()), out


def _rows(out: str) -> dict[str, tuple[str, str]]:
    """The table's rows, gate -> (passed, evidence), wrapped cells joined again."""
    rows: list[list[str]] = []
    for line in out.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells[0]:
            rows.append(cells)
        else:
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
    return {r[0]: (r[1], r[2]) for r in rows}


def test_passed_gates_read_back_with_their_numbers(models: Models) -> None:
    report = gate_report("iris", 2, stores=models.stores)
    assert report is not None and report.passed
    code, out, err = cli("models", "gates", "iris", "2")
    assert code == 0, err
    _fits(out)
    value = report.results[0].evidence["value"]
    assert _rows(out) == {"primary:accuracy": ("passed", f"accuracy {value:.4g}, min 0.8")}
    assert "every gate passed" in out and "recorded " in out and " by loop" in out
    assert (report.evaluation_id or "")[:12] in out


def test_failed_gates_are_shown_red_and_named_with_their_reasons(models: Models) -> None:
    report = gate_report("iris", 3, stores=models.stores)
    assert report is not None
    primary, guardrail, fairness = report.results
    code, out, err = cli("models", "gates", "iris", "3")
    assert code == 0, err  # shown: a failed gate is an answer, not an error
    _fits(out)
    assert "FAILED 1 of 3 gates against models:/iris/1" in out
    rows = _rows(out)
    assert rows == {
        r.gate: ("passed" if r.passed else "failed", r.summary()) for r in report.results
    }
    # the deciding numbers: value vs champion, the change against its bound, p
    e = primary.evidence
    assert rows["primary:accuracy"][1] == (
        f"accuracy {e['value']:.4g} vs {e['champion']:.4g}, {e['delta']:+.4g} >= -0.05, "
        f"p={e['bootstrap']['p_value']:.3g}"
    )
    assert rows["guardrail:accuracy"] == (
        "failed",
        f"accuracy {guardrail.evidence['value']:.4g}, min 0.995",
    )
    f = fairness.evidence
    assert rows["fairness:accuracy by size"][1] == (
        f"accuracy gap {f['gap']:.4g} (max 0.5), worst size={f['worst_group']} "
        f"{f['per_group'][f['worst_group']]['value']:.4g}, floor 0.5"
    )
    assert "1 of 3 gates failed: guardrail:accuracy" in out
    assert f"  guardrail:accuracy: {guardrail.reason}" in out
    assert " by alice" in out
    # in a terminal, "failed" is red
    got = CliRunner().invoke(
        app, ["models", "gates", "iris", "3"], env={"COLUMNS": "80", "FORCE_COLOR": "1"}
    )
    assert "\x1b[1;31mfailed" in got.stdout, got.stdout
    assert "\x1b[32mpassed" in got.stdout


def test_json_holds_every_field_of_the_recorded_evaluation(models: Models) -> None:
    code, out, _ = cli("models", "gates", "iris", "3", "--json")
    assert code == 0
    shown = json.loads(out)
    report = gate_report("iris", 3, stores=models.stores)
    assert report is not None
    assert shown["model"] == "iris" and shown["version"] == "3" and shown["recorded"] is True
    assert shown["passed"] is False and shown["recorded_by"] == "alice"
    assert shown["evaluated_at"] == report.evaluated_at and shown["champion"] == "models:/iris/1"
    assert [r["gate"] for r in shown["results"]] == [r.gate for r in report.results]
    assert shown["results"][0]["evidence"] == report.results[0].evidence
    assert shown["failed_reasons"] == report.failed_reasons()
    assert GateReport.from_dict(shown) == report


def test_a_version_without_gates_and_unknown_ones(models: Models) -> None:
    code, out, _ = cli("models", "gates", "iris", "1")
    assert code == 0 and "model 'iris' version 1 has no recorded gates" in out
    assert json.loads(cli("models", "gates", "iris", "1", "--json")[1]) == {
        "model": "iris",
        "version": "1",
        "recorded": False,
        "passed": False,
        "results": [],
        "failed_reasons": [],
    }
    for args, said in (
        (("iris", "9"), "error: model 'iris' has no version 9"),
        (("ghost", "1"), "error: no registered model named 'ghost'"),
    ):
        code, out, err = cli("models", "gates", *args)
        assert code == 1 and out == "" and err.strip() == said, err
    code, _, err = cli("models", "gates", "iris", "two")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "two" in err, err


GATED = """
import loopstack as ls


@ls.step(cache=False)
def gate(version: int = 2) -> bool:
    import pandas as pd
    from sklearn.datasets import load_iris

    from loopstack.loop import Gates, MetricThreshold, gate_version

    X, y = load_iris(return_X_y=True, as_frame=True)
    gates = Gates(
        primary=MetricThreshold("accuracy", min_value=0.999, max_regression=0.05),
        require_validation=False,
        require_lineage=False,
    )
    data = pd.DataFrame(X).assign(y=y)
    gate_version(gates, "iris", version, champion_alias=None, data=data).raise_for_failures()
    return True


@ls.pipeline(name="gated")
def gated(version: int = 2):
    gate(version=version)
"""


def test_loop_status_names_in_full_why_a_firing_stopped_at_its_gates(
    models: Models, tmp_path: Path
) -> None:
    from loopstack.loop import Controller, Trigger, TriggerStore

    path = tmp_path / "gated_flow.py"
    path.write_text(textwrap.dedent(GATED))
    store = TriggerStore(models.stores)
    store.add(Trigger("by-hand", "manual", f"{path}:gated", params={"version": 2}))
    store.fire_manual("by-hand", "new labels")
    report = Controller(models.stores, holder="t").step()
    assert [e.kind for e in report.events] == ["launched", "stopped"], report.events
    (view,) = store.firings()
    reason: Any = view.outcome["gate"]
    assert "primary:accuracy" in reason and "min 0.999" in reason, view.outcome
    code, out, err = cli("loop", "status")
    assert code == 0, err
    # the table cuts the outcome to fit 80 columns; the line under it does not
    flat = " ".join(out.split())
    assert f"#{view.firing_id} stopped at its gates: {' '.join(reason.split())}" in flat, out
    assert "each gate's evidence: loopstack models gates iris 2" in out
    _fits(out)
    # and the version the gate step evaluated holds that evidence
    code, out, _ = cli("models", "gates", "iris", "2")
    assert code == 0 and "1 of 1 gates failed: primary:accuracy" in out
    assert json.loads(cli("loop", "status", "--json")[1])[0]["status"] == "stopped"


def test_a_passed_recorded_again_as_failed_shows_the_latest(models: Models) -> None:
    record_real_gates(models, 2, min_accuracy=0.999)
    code, out, _ = cli("models", "gates", "iris", "2")
    assert code == 0 and "1 of 1 gates failed: primary:accuracy" in out
    assert "every gate passed" not in out


def test_validation_and_lineage_gates_show_their_evidence(models: Models) -> None:
    import loopstack as ls
    from loopstack.loop import Gates, MetricThreshold, gate_version

    data = models.frame.assign(y=models.y)
    gates = Gates(primary=MetricThreshold("accuracy", max_regression=0.05), significance=None)
    report = gate_version(
        gates, "iris", 2, champion_alias=None, data=data, suite=ls.infer_suite(data)
    )
    by_gate = {r.gate: r for r in report.results}
    assert by_gate["data_validation"].passed and not by_gate["lineage"].passed
    code, out, _ = cli("models", "gates", "iris", "2")
    assert code == 0
    rows = _rows(out)
    suite = by_gate["data_validation"].evidence["suite"]
    assert rows["data_validation"] == ("passed", f"suite {suite!r}, 150 rows")
    run = by_gate["lineage"].evidence["run_id"]
    assert rows["lineage"] == ("failed", f"run {run[:12]} <- 0 datasets")
    assert "1 of 3 gates failed: lineage" in out
    assert f"  lineage: run {run} logged no dataset inputs" in " ".join(out.split("\n"))
