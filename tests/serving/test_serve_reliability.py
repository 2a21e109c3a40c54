"""Reliability of `loopstack serve` under steady load, real processes on loopback: a
stored deployment switched blue-green, canaried and rolled back through the deployment
store loses no request, and every answer's version made its predictions; a worker
killed (SIGKILL) is replaced by uvicorn's supervisor and only the requests it held
fail. Bounded by a timeout; no assertion is on timing."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.serving import deployments
from tests.serving.serve_procs import Serve, eventually, serve_proc, wait_ready, workers_of

__all__ = ["serve_proc"]  # the fixture, used by name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _iris() -> pd.DataFrame:
    return pd.DataFrame(load_iris(as_frame=True).data)


@dataclass
class Load:
    """Client threads looping predictions; every answer kept."""

    url: str
    body: dict[str, Any]
    threads: int = 3
    answers: list[tuple[int, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)

    def _loop(self, key: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                # a fresh connection each time: a killed worker takes only what it holds
                got = httpx.post(
                    f"{self.url}/endpoints/churn-api/predict",
                    json=self.body,
                    headers={"X-Routing-Key": f"client-{key}-{n}"},
                    timeout=30,
                )
            except httpx.TransportError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            self.answers.append((got.status_code, got.json()))

    def __enter__(self) -> Load:
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(i,), daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(timeout=30)

    def more(self, n: int = 5) -> None:
        """Wait for ``n`` more answers (the load is flowing)."""
        seen = len(self.answers) + len(self.failures)
        eventually(lambda: len(self.answers) + len(self.failures) >= seen + n)


def _two_churn_versions() -> pd.DataFrame:
    """churn/1 predicts iris classes 0-2, churn/2 the same shifted to 10-12: an answer's
    predictions say which version made them."""
    frame = _iris()
    y = load_iris().target
    with ls.start_run(experiment="ops") as run:
        for shift in (0, 10):
            model = LogisticRegression(max_iter=300).fit(frame, y + shift)
            run.log_model(
                model, name="churn", artifact_path=f"m{shift}", sample_input=frame.head(3)
            )
    return frame


def _check_consistent(answers: list[tuple[int, Any]]) -> set[str]:
    """Every answer a 200 whose version made its predictions; the versions seen."""
    bad = [a for a in answers if a[0] != 200]
    assert not bad, bad[:5]
    versions = set()
    for _, doc in answers:
        version = doc["model_version"]
        versions.add(version)
        low = {"1": 0, "2": 10}[version]
        assert all(low <= p <= low + 2 for p in doc["predictions"]), doc
    return versions


def test_switch_canary_and_rollback_under_load_lose_no_request(
    serve_proc: Callable[..., Serve],
) -> None:
    frame = _two_churn_versions()
    store = deployments()
    store.create("churn-api", "churn/1")
    served = serve_proc(
        "--deployment", "churn-api", "--workers", "2", "--refresh-s", "0.2", "--no-access-log"
    )
    body = {"records": frame.iloc[[0, 60, 120]].to_dict("records")}  # one row per class

    def now_serving(version: str) -> Callable[[], bool]:
        return lambda: (
            all(doc["model_version"] == version for _, doc in load.answers[-6:])
            and len(load.answers) >= 6
        )

    with Load(served.url, body) as load:
        load.more()
        store.set("churn-api", "churn/2")  # blue-green: green (2) answers once warm
        eventually(now_serving("2"))
        load.more()
        store.canary("churn-api", "churn/1", weight=50)  # half the keys to version 1
        canaried = len(load.answers)
        eventually(lambda: {d["arm"] for _, d in load.answers[canaried:]} >= {"canary"})
        load.more(10)
        store.rollback("churn-api")  # back to the revision before the canary
        eventually(now_serving("2"))
        store.rollback("churn-api", to=1)  # and to before the switch: version 1 again
        eventually(now_serving("1"))
        load.more()
    assert not load.failures, load.failures[:5]
    assert _check_consistent(load.answers) == {"1", "2"}
    arms = {(d["arm"], d["model_version"]) for _, d in load.answers[canaried:]}
    assert ("canary", "1") in arms and any(v == "2" for _, v in arms), arms


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(
    serve_proc: Callable[..., Serve],
) -> None:
    if not Path("/proc/self/task").is_dir():
        pytest.skip("finding the worker processes needs Linux's /proc")
    frame = _two_churn_versions()
    deployments().create("churn-api", "churn/2")
    served = serve_proc("--deployment", "churn-api", "--workers", "2", "--no-access-log")
    workers = workers_of(served.proc.pid)
    assert len(workers) == 2, workers
    body = {"records": frame.iloc[[0, 60, 120]].to_dict("records")}
    with Load(served.url, body, threads=3) as load:
        load.more(10)
        os.kill(workers[0], signal.SIGKILL)
        eventually(lambda: len(set(workers_of(served.proc.pid)) - {workers[0]}) == 2)
        load.more(20)  # the server kept answering (the survivor, then both)
        wait_ready(served)  # the new worker loaded its own models: ready everywhere again
        load.more(10)
    replaced = set(workers_of(served.proc.pid))
    assert workers[1] in replaced and workers[0] not in replaced and len(replaced) == 2
    # at most the requests the killed worker held (one per client thread) failed
    assert len(load.failures) <= load.threads, load.failures
    assert _check_consistent(load.answers) == {"2"}
