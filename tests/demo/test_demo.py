"""`loopstack demo` as the README's first command runs it: the real CLI in a child
process, once; then the stores it leaves are read back to check that each stage of
the story happened for real (not only that it printed so)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loopstack.cli import app
from tests.conftest import free_port

# The demo runs once, in the first test's setup: ~2.5 minutes alone, up to ~6 when the
# machine is loaded (other xdist workers, other jobs), past the suite's 300 s default.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The demo's home and everything it printed (run at 120 columns, no colour)."""
    home = tmp_path_factory.mktemp("demo") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSTACK_", "MLFLOW_"))}
    env.update({"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})
    done = subprocess.run(
        [sys.executable, "-m", "loopstack.cli", "demo", "--home", str(home),
         "--serve-port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=840, cwd=home.parent,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    yield home, output


@pytest.fixture
def stores(demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from loopstack.store import open_stores

    monkeypatch.setenv("LOOPSTACK_HOME", str(demo[0]))
    return open_stores()


@pytest.mark.slow
def test_it_says_each_stage_and_where_to_look(demo: tuple[Path, str]) -> None:
    home, output = demo
    for said in (
        "registered transactions/1",
        "applied 3 feature views",
        "registered fraud/1",
        "risk-lead approved: production -> v1",
        "/endpoints/fraud-api/predict answers",
        "the world drifts",
        "alert fired: inputs-drift",
        "loop fired: fraud-drift drift_share",
        "rollout #1 promoted",
        "the velocity stream job stops",
        "rollout #2 rolled_back: guardrail recall >= 0.5 breached 2 times",
        "production is v2",
        f"export LOOPSTACK_HOME={home}",
        "loopstack loop status",
    ):
        assert said in output, (said, output[-3000:])
    assert "Traceback" not in output


@pytest.mark.slow
def test_v2_was_retrained_on_drift_gated_and_promoted(stores: Any) -> None:
    import loopstack as ls
    from loopstack.loop import Rollouts, gate_results, loop_status
    from loopstack.registry import SqlRegistry

    registry = SqlRegistry(stores)
    assert registry.get_registered_model("fraud").aliases["production"] == 2
    firings = {f.trigger: f for f in loop_status(stores)}
    assert set(firings) == {"fraud-drift", "velocity-challenger"}
    drift = firings["fraud-drift"]
    assert drift.status == "done" and drift.reason.startswith("drift_share "), drift
    run = ls.pipelines.get_run(drift.pipeline_run_uuid)
    assert run.status == "FINISHED" and set(run.steps) == {
        "labelled",
        "retrain",
        "gate",
        "roll_out",
    }
    gates = {r.gate: r for r in gate_results("fraud", 2)}
    assert set(gates) == {
        "data_validation",
        "primary:roc_auc",
        "guardrail:recall",
        "fairness:recall by age_band",
        "lineage",
    }
    assert all(r.passed for r in gates.values()), gates
    assert gates["primary:roc_auc"].evidence["delta"] >= 0.02
    (first,) = [r for r in Rollouts(stores).list(endpoint="fraud-api") if r.version == "2"]
    assert first.status == "promoted", first
    trail = [e["action"] for e in Rollouts(stores).events(first.rollout_id)]
    assert trail.count("rollout.canary") == 2 and trail[-1] == "rollout.promote", trail
    # v2 read the feature store's point-in-time training set, which holds live rows
    v2 = registry.get_model_version("fraud", 2)
    name, _, number = v2.tags["loopstack.training_set"].rpartition("/")
    assert name == "fraud-training" and int(number) >= 2
    assert ls.get_dataset("transactions").version >= 2


@pytest.mark.slow
def test_v3_passed_offline_and_was_rolled_back_live(stores: Any) -> None:
    from loopstack.loop import Rollouts, gate_results
    from loopstack.serving import SqlDeployments

    assert all(r.passed for r in gate_results("fraud", 3))
    (second,) = [r for r in Rollouts(stores).list(endpoint="fraud-api") if r.version == "3"]
    assert second.status == "rolled_back", second
    assert "recall" in (second.reason or ""), second.reason
    deployment = SqlDeployments(stores).get("fraud-api")
    assert [a.version for a in deployment.arms] == [2], deployment.arms


@pytest.mark.slow
def test_the_traffic_was_logged_labelled_and_alerted_on(stores: Any) -> None:
    from loopstack.monitoring import AlertStore
    from loopstack.serving import PredictionLog
    from loopstack.store.events import EventLog

    plog = PredictionLog(EventLog(stores))
    try:
        predictions = plog.read_predictions("fraud-api").to_pandas()
        feedback = plog.read_feedback().num_rows
    finally:
        plog.close()
    assert set(predictions["model_version"]) >= {"1", "2", "3"}
    assert feedback > 0.5 * predictions["request_id"].nunique()
    # v3's requests were served with its stale velocity replaced by the default
    v3 = predictions[predictions["model_version"] == "3"]
    assert len(v3) and v3["features"].str.contains("txn_count_1h").all()
    fired = {a["rule"] for a in AlertStore(stores).history() if a["kind"] == "fired"}
    assert "inputs-drift" in fired, fired


def test_a_busy_serve_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        got = CliRunner().invoke(
            app, ["demo", "--home", str(tmp_path / "d"), "--serve-port", str(port)]
        )
    assert got.exit_code == 1, got.output
    assert got.output.startswith("error:") and "--serve-port" in got.output, got.output
    assert not (tmp_path / "d").exists()
