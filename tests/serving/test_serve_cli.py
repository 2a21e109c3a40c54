"""`loopstack serve`: the one-line form, several endpoints, refusals before any bind, and
a real process with two workers answering tritonclient once its models are warm."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from typer.testing import CliRunner

from loopstack.cli import app
from loopstack.cli._serve_models import pair_models
from loopstack.errors import Invalid
from tests.conftest import free_port, server_output, stop_server
from tests.serving.conftest import log_models


def test_a_name_belongs_to_the_model_before_it() -> None:
    args = ["--model", "models:/a@x", "--port", "1", "--model=models:/b/1", "--name", "bee"]
    assert pair_models(args) == [("models:/a@x", None), ("models:/b/1", "bee")]
    with pytest.raises(Invalid, match="give --model first"):
        pair_models(["--name", "x", "--model", "models:/a/1"])
    with pytest.raises(Invalid, match="two names"):
        pair_models(["--model", "models:/a/1", "--name", "x", "--name", "y"])


def test_refusals_are_one_line_before_anything_listens() -> None:
    log_models()
    runner = CliRunner()
    unknown = runner.invoke(app, ["serve", "--model", "models:/nope@champion", "--port", "1"])
    assert unknown.exit_code == 1 and "nope" in unknown.output, unknown.output
    assert "Traceback" not in unknown.output
    twice = runner.invoke(
        app, ["serve", "--model", "models:/iris/1", "--model", "models:/iris@champion"]
    )
    assert twice.exit_code == 1 and "['iris'] given twice" in twice.output, twice.output
    bad = runner.invoke(app, ["serve", "--model", "models:/iris/1", "--port", "70000"])
    assert bad.exit_code == 1 and "65535" in bad.output
    assert "serve" in runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output


def _worker_environs(pid: int) -> list[list[bytes]]:
    """The environment of each uvicorn worker (a spawned child) of ``pid``, on Linux."""
    found: list[list[bytes]] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                if b"spawn_main" not in Path(f"/proc/{child}/cmdline").read_bytes():
                    continue
                found.append(Path(f"/proc/{child}/environ").read_bytes().split(b"\0"))
            except OSError:  # gone meanwhile
                continue
    return found


@pytest.fixture
def serve_process(ls_home: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    log_models()
    port = free_port()
    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home)}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server
    command = [
        sys.executable,
        "-m",
        "loopstack.cli",
        "serve",
        "--model",
        "models:/iris@champion",
        "--model",
        "models:/reg/1",
        "--name",
        "regression",
        "--port",
        str(port),
        "--workers",
        "2",
        "--no-access-log",
    ]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined] - as start_server leaves it, for stop_server
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        in_a_row = 0  # each worker loads on its own: one ready answer is one worker's
        while time.monotonic() < deadline:
            assert proc.poll() is None, server_output(proc)
            try:
                ready = httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            in_a_row = in_a_row + 1 if ready else 0
            if in_a_row == 20:
                break
            time.sleep(0.05 if ready else 0.2)
        else:
            pytest.fail(f"not ready within 90 s:\n{server_output(proc)}")
        yield url, proc
    finally:
        print(server_output(proc))
        stop_server(proc)


@pytest.mark.slow
def test_serve_process_with_two_workers(serve_process: tuple[str, subprocess.Popen]) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    url, proc = serve_process
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url.removeprefix("http://"))

    def answered(call: Any) -> Any:
        """``call()``, retried while it reaches a worker still loading (503, as a client
        behind a load balancer would); every other error fails the test."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return call()
            except InferenceServerException as exc:
                if exc.status() != "503" or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    assert client.is_server_live()
    assert answered(lambda: client.get_model_metadata("regression"))["versions"] == ["1"]
    X = load_iris(as_frame=True).data
    matrix = httpclient.InferInput("features", [3, 4], "FP64")
    matrix.set_data_from_numpy(X.head(3).to_numpy(), binary_data=True)
    for _ in range(4):  # more requests than workers: each worker answers from its own load
        result = answered(lambda: client.infer("iris", [matrix]))
        assert result.as_numpy("predict").shape == (3,)
        assert np.allclose(result.as_numpy("predict_proba").reshape(3, 3).sum(axis=1), 1)
    if Path(f"/proc/{proc.pid}/task").is_dir():  # Linux: each worker has one BLAS thread
        environs = _worker_environs(proc.pid)
        assert len(environs) == 2
        for environ in environs:
            assert b"OMP_NUM_THREADS=1" in environ and b"OPENBLAS_NUM_THREADS=1" in environ
