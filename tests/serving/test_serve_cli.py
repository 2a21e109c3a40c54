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

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from typer.testing import CliRunner

from loopstack.cli import app
from loopstack.cli._serve_models import pair_models
from loopstack.errors import Invalid
from tests.conftest import free_port
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


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


@pytest.fixture
def serve_process(ls_home: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    log_models()
    port = free_port()
    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home)}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
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
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.seek(0) or log.read().decode()
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            log.seek(0)
            pytest.fail(f"not ready within 90 s:\n{log.read().decode()}")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.seek(0)
        print(log.read().decode())
        log.close()


@pytest.mark.slow
def test_serve_process_with_two_workers(serve_process: tuple[str, subprocess.Popen]) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    url, proc = serve_process
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready("regression")
    X = load_iris(as_frame=True).data
    matrix = httpclient.InferInput("features", [3, 4], "FP64")
    matrix.set_data_from_numpy(X.head(3).to_numpy(), binary_data=True)
    for _ in range(4):  # more requests than workers: each worker answers from its own load
        result = client.infer("iris", [matrix])
        assert result.as_numpy("predict").shape == (3,)
        assert np.allclose(result.as_numpy("predict_proba").reshape(3, 3).sum(axis=1), 1)
    workers = _children(proc.pid)
    print("workers:", workers)
    if workers:  # Linux: every worker process runs with one BLAS/OpenMP thread
        for pid in workers:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"OMP_NUM_THREADS=1" in environ and b"OPENBLAS_NUM_THREADS=1" in environ
