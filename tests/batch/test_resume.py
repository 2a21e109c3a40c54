"""A real `loopstack predict batch` process SIGKILLed midway, then run again: the rerun
resumes from the finished chunks and the output has every row exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import frame, write_parquet


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "loopstack.cli", *args]


@pytest.mark.slow
def test_a_killed_job_resumes_and_writes_every_row_once(model_uri: str, tmp_path: Path) -> None:
    data = frame(40_000)
    src = write_parquet(tmp_path / "in.parquet", data, 500)
    out = tmp_path / "out.parquet"
    staging = tmp_path / "out.parquet.staging"
    args = _cli(
        "predict", "batch", model_uri, "--input", str(src), "--output", str(out),
        "--key", "account_id", "--chunk-rows", "500", "--workers", "1",
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    log = tmp_path / "job.log"
    with log.open("wb") as sink:
        job = subprocess.Popen(args, env=env, start_new_session=True, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(staging.glob("part-*.parquet"))) < 5:
        assert job.poll() is None, log.read_text()
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # the job and its worker processes, at once
    job.wait()
    kept = len(list(staging.glob("part-*.parquet")))
    assert 5 <= kept < 80 and not out.exists()

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed" in done.stdout
    scores = pd.read_parquet(out)
    assert len(scores) == 40_000
    assert scores["account_id"].tolist() == data["account_id"].tolist()
    assert not staging.exists()
