"""The server's and the serving app's /metrics scraped by a real Prometheus (Debian's
prometheus) and read back through its HTTP API: a serving counter equal to the
predictions sent, and a monitored value (an alert rule's latest evaluation) as a
gauge. Skipped when the binary is not installed, except under CI (.ci/run installs
it), where that fails; a binary that is installed but does not start fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopstack.monitoring import AlertRule, AlertStore
from loopstack.server import create_app, create_serving_app
from loopstack.serving import EndpointSpec, ServingRuntime
from loopstack.store import open_stores
from tests.conftest import ThreadedServer, free_port
from tests.serving.conftest import log_models

pytestmark = pytest.mark.slow

BINARY = shutil.which("prometheus")
TIMEOUT_S = 60.0


class Prometheus:
    """A Prometheus process scraping ``jobs`` every second; its log for failure messages."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        got = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert got["status"] == "success", got
        return got["data"]

    def targets(self) -> dict[str, dict[str, Any]]:
        """The active targets by job name."""
        return {t["labels"]["job"]: t for t in self.api("targets")["activeTargets"]}

    def wait(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{what} not seen in {TIMEOUT_S:.0f} s; prometheus log:\n{self.log.read_text()}"
                )
            time.sleep(0.25)

    def wait_up(self, *jobs: str) -> None:
        self.wait(
            f"targets {jobs} up",
            lambda: all(self.targets().get(j, {}).get("health") == "up" for j in jobs),
        )

    def values(self, query: str) -> list[tuple[dict[str, str], float]]:
        """The instant query's samples as (labels, value)."""
        data = self.api("query", query=query)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def wait_value(self, query: str, expected: float) -> dict[str, str]:
        """Poll ``query`` until it answers one sample equal to ``expected``; its labels."""
        seen: list[Any] = []

        def check() -> bool:
            seen[:] = self.values(query)
            return len(seen) == 1 and seen[0][1] == expected

        try:
            self.wait(f"{query} == {expected}", check)
        except pytest.fail.Exception as exc:
            raise AssertionError(f"{exc}\nlast answer: {seen}") from None
        return dict(seen[0][0])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[list[dict[str, Any]]], Prometheus]]:
    """Start a Prometheus over scrape configs (one dict per job); stopped at the end."""
    if BINARY is None:
        missing = "prometheus is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):  # .ci/run installs it: missing there is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    procs: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(jobs: list[dict[str, Any]]) -> Prometheus:
        import json

        # JSON is YAML: no YAML writer needed
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": jobs,
        }
        (tmp_path / "prometheus.yml").write_text(json.dumps(config, indent=2))
        port = free_port()
        log_path = tmp_path / "prometheus.log"
        log = log_path.open("w")
        proc = subprocess.Popen(
            [
                BINARY,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited {proc.returncode}: {log_path.read_text()}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return Prometheus(url, log_path)
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready in 30 s: {log_path.read_text()}")
            time.sleep(0.2)

    yield start
    for proc, log in procs:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def job(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_name": name,
        "static_configs": [{"targets": [url.removeprefix("http://")]}],
        **extra,
    }


def test_serving_and_monitor_metrics_read_back_through_prometheus(
    prometheus: Callable[[list[dict[str, Any]]], Prometheus],
) -> None:
    X, _, _ = log_models()
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    assert runtime.ready, [e.error for e in runtime.endpoints]
    store = AlertStore(open_stores())
    store.save_rule(
        AlertRule(
            "iris-accuracy-low",
            "accuracy",
            "<",
            0.8,
            severity="critical",
            category="model_quality",
            labels={"endpoint": "iris"},
        )
    )
    store.evaluate({"accuracy": 0.625}, labels={"endpoint": "iris"})

    with (
        ThreadedServer(create_app()) as tracking,
        ThreadedServer(create_serving_app(runtime, start=False)) as serving,
    ):
        prom = prometheus([job("loopstack", tracking.url), job("serving", serving.url)])
        prom.wait_up("loopstack", "serving")

        sent = 7
        for i in range(sent):
            body = {"records": X.iloc[i : i + 2].to_dict(orient="records")}
            r = httpx.post(f"{serving.url}/endpoints/iris/predict", json=body, timeout=30)
            assert r.status_code == 200, r.text
        got = prom.wait_value(
            'sum by (endpoint) (loopstack_serving_requests_total{job="serving", endpoint="iris"})',
            sent,
        )
        assert got == {"endpoint": "iris"}

        labels = prom.wait_value('loopstack_monitor_value{rule="iris-accuracy-low"}', 0.625)
        assert labels == {
            "__name__": "loopstack_monitor_value",
            "instance": tracking.url.removeprefix("http://"),
            "job": "loopstack",
            "rule": "iris-accuracy-low",
            "metric": "accuracy",
            "endpoint": "iris",
        }
        prom.wait_value(
            'loopstack_monitor_alert_firing{rule="iris-accuracy-low", severity="critical",'
            ' category="model_quality"}',
            1,
        )

        # the next window resolves the alert: Prometheus sees the new value and the 0
        store.evaluate({"accuracy": 0.93}, labels={"endpoint": "iris"})
        prom.wait_value('loopstack_monitor_value{rule="iris-accuracy-low"}', 0.93)
        prom.wait_value('loopstack_monitor_alert_firing{rule="iris-accuracy-low"}', 0)


def test_prometheus_scrapes_the_server_with_auth_on_through_a_bearer_token(
    prometheus: Callable[[list[dict[str, Any]]], Prometheus],
    viewer_server: tuple[str, str, str],
    tmp_path: Path,
) -> None:
    url, _, viewer = viewer_server
    store = AlertStore(open_stores())
    store.save_rule(AlertRule("p99-high", "latency_p99_ms", ">", 250))
    store.evaluate({"latency_p99_ms": 412.5})
    token_file = tmp_path / "token"
    token_file.write_text(viewer)
    prom = prometheus(
        [
            job(
                "with-token",
                url,
                authorization={"type": "Bearer", "credentials_file": str(token_file)},
            ),
            job("without-token", url),
        ]
    )
    prom.wait_up("with-token")
    prom.wait_value('loopstack_monitor_value{job="with-token", rule="p99-high"}', 412.5)

    prom.wait(
        "the scrape without a token refused",
        lambda: "401" in prom.targets()["without-token"].get("lastError", ""),
    )
    assert prom.targets()["without-token"]["health"] == "down"
    assert prom.values('loopstack_monitor_value{job="without-token"}') == []
