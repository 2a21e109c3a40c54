"""`loopstack quickstart`: the README's first command, end to end in a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loopstack.tracking import TrackingClient


@pytest.mark.slow
def test_quickstart_logs_a_demo_run_over_http_and_stops(ls_home: Path, tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home), "COLUMNS": "200"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopstack.cli",
            "quickstart",
            "--port",
            str(port),
            "--no-keep-running",
            "--epochs",
            "12",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"http://127.0.0.1:{port}/docs" in out
    assert f"MLFLOW_TRACKING_URI=http://127.0.0.1:{port}" in out

    client = TrackingClient()
    exp = client.get_experiment_by_name("quickstart")
    assert exp is not None
    [run] = client.search_runs([exp.experiment_id])
    assert f"loopstack runs show {run.run_id}" in out
    assert run.status == "FINISHED"
    assert run.params["epochs"] == "12" and run.params["model"] == "logistic_regression"
    assert set(run.metrics) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert run.metrics["val_accuracy"] > 0.8
    loss = client.get_metric_history(run.run_id, "loss")
    assert [m.step for m in loss] == list(range(12))
    assert loss[-1].value < loss[0].value
    assert {d.name for d in run.inputs} == {"churn-demo-train", "churn-demo-validation"}
    assert run.tags["loopstack.quickstart"] == "true"
    assert run.tags["loopstack.command"]  # logged with the fluent API: environment captured
    assert (ls_home / "quickstart-server.log").exists()  # where the server's output went

    listed = {f.path for f in client.list_artifacts(run.run_id)}
    assert {"model", "report.json"} <= listed
    dest = client.download_artifacts(run.run_id, "model/weights.json", tmp_path / "dl")
    weights = json.loads(Path(dest).read_text())
    assert len(weights["weights"]) == 6 and "bias" in weights

    # --no-keep-running: the server is gone
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_quickstart_refuses_a_port_in_use() -> None:
    from typer.testing import CliRunner

    from loopstack.cli import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = CliRunner().invoke(app, ["quickstart", "--port", str(port), "--no-keep-running"])
    assert result.exit_code == 1
    assert f"error: port {port} on 127.0.0.1 is already in use" in result.stderr
