"""Running `loopstack serve` processes in tests: start one on a free port, wait until
every worker is ready, and stop it (and print what it said) at the end."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, server_output, stop_server

__all__ = ["Serve", "eventually", "serve_proc", "start_serve", "wait_ready", "workers_of"]


@dataclass
class Serve:
    """A running ``loopstack serve`` process."""

    proc: subprocess.Popen
    url: str
    verify: ssl.SSLContext | bool = True

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify, timeout=30, **kw)


def start_serve(
    args: list[str], *, scheme: str = "http", verify: ssl.SSLContext | bool = True
) -> Serve:
    """``loopstack serve ARGS`` on a free port, once its readiness answered true 10 times
    in a row (each worker loads on its own: one true answer is one worker's)."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server
    command = [sys.executable, "-m", "loopstack.cli", "serve", "--port", str(port), *args]
    proc = subprocess.Popen(command, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    served = Serve(proc, f"{scheme}://127.0.0.1:{port}", verify)
    wait_ready(served)
    return served


def wait_ready(served: Serve, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    in_a_row = 0
    with served.client() as client:
        while in_a_row < 10:
            assert served.proc.poll() is None, server_output(served.proc)
            assert time.monotonic() < deadline, f"not ready:\n{server_output(served.proc)}"
            try:
                ready = client.get("/v2/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            in_a_row = in_a_row + 1 if ready else 0
            time.sleep(0.05 if ready else 0.2)


@pytest.fixture
def serve_proc() -> Iterator[Callable[..., Serve]]:
    """Starts ``loopstack serve`` processes; stops every one still running at the end."""
    started: list[Serve] = []

    def start(*args: str, **kw: Any) -> Serve:
        served = start_serve(list(args), **kw)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            print(server_output(served.proc)[-4000:])
        stop_server(served.proc)


def eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until ``check()`` is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def workers_of(pid: int) -> list[int]:
    """The uvicorn worker processes (spawned children) of ``pid``, on Linux."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
            except OSError:
                continue
    return found
