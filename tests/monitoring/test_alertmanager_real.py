"""Alerts delivered to a real Prometheus Alertmanager (Debian's prometheus-alertmanager)
and read back through its API v2. Skipped when the binary is not installed; a binary
that is installed but does not start fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loopstack.monitoring import AlertRouter, AlertRule, RuleState, evaluate
from tests.conftest import free_port

pytestmark = pytest.mark.slow

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1h
receivers:
  - name: blackhole
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if BINARY is None:
        missing = (
            "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
        )
        if os.environ.get("CI"):  # .ci/run installs it: missing there is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    (tmp_path / "am.yml").write_text(CONFIG)
    port = free_port()
    log = (tmp_path / "am.log").open("w")
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"alertmanager exited {proc.returncode}: {(tmp_path / 'am.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"alertmanager not ready in 30 s: {(tmp_path / 'am.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_fired_alert_is_active_in_alertmanager_and_gone_once_resolved(alertmanager: str) -> None:
    rule = AlertRule(
        "p99-high", "latency_p99_ms", ">", 250, severity="critical", labels={"endpoint": "churn"}
    )
    router = AlertRouter({"infrastructure": [f"alertmanager+{alertmanager}"]})
    state, events = evaluate(rule, RuleState(), 400.0, time.time())
    assert [e.kind for e in events] == ["fired"]
    assert router.deliver(events) == []
    active = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    assert len(active) == 1
    got = active[0]
    assert got["labels"] == {
        "alertname": "p99-high",
        "category": "infrastructure",
        "endpoint": "churn",
        "metric": "latency_p99_ms",
        "severity": "critical",
    }
    assert got["annotations"]["summary"] == "latency_p99_ms > 250 (value 400)"
    assert got["status"]["state"] == "active"

    state, events = evaluate(rule, state, 100.0, time.time())
    assert [e.kind for e in events] == ["resolved"]
    assert router.deliver(events) == []
    # the resolution matched the firing by its labels: no active alert remains
    assert httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json() == []
