"""A real `loopstack serve` process under a burst beyond its queue: the excess gets 503
with Retry-After, every other answer is a correct 200, the process answers normally
afterwards, its /metrics (Prometheus text) counts it all per endpoint and version, and
a graceful stop flushes the prediction log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, server_output, stop_server
from tests.serving.conftest import log_models

QUEUE = 4  # requests waiting at most; one more runs
BURST = 4 * (QUEUE + 1)


@pytest.fixture
def small_queue(ls_home: Path) -> Iterator[tuple[str, object, subprocess.Popen]]:
    """``loopstack serve`` with a queue of 4 and a batch that lingers 1.5 s under load,
    so a burst piles up behind the first call."""
    _, clf, _ = log_models()
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server
    command = [
        sys.executable, "-m", "loopstack.cli", "serve", "--model", "models:/iris@champion",
        "--port", str(port), "--no-access-log", "--max-queue", str(QUEUE),
        "--max-batch-size", "64", "--batch-latency-ms", "1500",
    ]  # fmt: skip
    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home)}
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined] - as stop_server expects
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, server_output(proc)
            assert time.monotonic() < deadline, server_output(proc)
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url, clf, proc
    finally:
        stop_server(proc)


async def _burst(url: str, body: dict, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.post(url, json=body) for _ in range(n)))


@pytest.mark.slow
def test_a_burst_beyond_the_queue_gets_503_and_the_rest_is_answered(
    small_queue: tuple[str, object, subprocess.Popen],
) -> None:
    url, clf, proc = small_queue
    from sklearn.datasets import load_iris

    rows = load_iris(as_frame=True).data.iloc[[0, 75, 149]]
    body = {"records": rows.to_dict("records")}
    want = list(clf.predict(rows))  # type: ignore[attr-defined]
    answers = asyncio.run(_burst(f"{url}/endpoints/iris/predict", body, BURST))
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 503}, [a.text for a in answers if a.status_code not in (200, 503)]
    refused = [a for a in answers if a.status_code == 503]
    served = [a for a in answers if a.status_code == 200]
    assert refused and served, codes
    assert len(served) <= BURST // 2, codes  # the queue bounds what is taken in
    for answer in refused:
        assert answer.headers["Retry-After"] == "1"
        assert "queue is full" in answer.json()["message"]
    for answer in served:
        assert answer.json()["predictions"] == want
    after = httpx.post(f"{url}/endpoints/iris/predict", json=body, timeout=30)
    assert after.status_code == 200 and after.json()["predictions"] == want

    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    answer_labels = {"endpoint": "iris", "model_version": "1", "arm": ""}

    def value(family: str, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[family].samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )

    requests = "loopstack_serving_requests"
    assert value(requests, f"{requests}_total", **answer_labels) == BURST + 1
    errors = "loopstack_serving_errors"
    assert value(errors, f"{errors}_total", status="503", **answer_labels) == len(refused)
    latency = "loopstack_serving_latency_seconds"
    assert value(latency, f"{latency}_count", **answer_labels) == len(served) + 1
    batch = "loopstack_serving_batch_size"
    assert value(batch, f"{batch}_sum", model="iris/1") == len(served) + 1
    batches = value(batch, f"{batch}_count", model="iris/1")
    assert 0 < batches < len(served) + 1  # the waiting requests left together
    assert value("loopstack_serving_queue_depth", "loopstack_serving_queue_depth") == 0
    dropped = "loopstack_serving_prediction_log_dropped"
    assert value(dropped, f"{dropped}_total") == 0

    # a graceful stop flushes the prediction log: every answered prediction is there, the
    # one answered just before the stop (still in the buffer) too
    last = httpx.post(f"{url}/endpoints/iris/predict", json=body, headers={"X-Request-ID": "last"})
    assert last.status_code == 200
    proc.terminate()
    proc.wait(30)  # uvicorn shuts down, then re-raises the signal: the code is -15
    from loopstack.serving import PredictionLog
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog

    plog = PredictionLog(EventLog(open_stores()))
    try:
        logged = plog.read_predictions("iris")
    finally:
        plog.close()
    assert logged.num_rows == len(served) + 2 and "last" in logged["request_id"].to_pylist()
    assert set(logged["model_version"].to_pylist()) == {"1"}
