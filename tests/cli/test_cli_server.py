"""`loopstack server` says where it listens and what it serves, logs each request, refuses
a port it cannot use at once, and serves /docs without the internet."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port, server_output, start_server, stop_server


def _server(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopstack.cli", "server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_an_impossible_port_is_refused_at_once() -> None:
    done = _server("--port", "99999")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: --port must be a TCP port from 1 to 65535; got 99999"


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _server("--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use; pass --port with a free one"
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_an_unknown_host_is_one_line() -> None:
    done = _server("--host", "no-such-host.invalid", "--port", str(free_port()))
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot resolve the host 'no-such-host.invalid'")


def _wait_for(proc: subprocess.Popen, pattern: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = server_output(proc)
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} never appeared in:\n{server_output(proc)}")


@pytest.mark.slow
def test_the_server_says_where_it_listens_and_logs_each_request(ls_home: Path) -> None:
    proc, url = start_server({**os.environ, "LOOPSTACK_HOME": str(ls_home)})
    try:
        httpx.get(f"{url}/api/v1/experiments")
        text = _wait_for(proc, r'"GET /api/v1/experiments HTTP/1.1" 200')
        assert f"server listening on {url}" in text
        assert f"metadata:   sqlite:///{ls_home}" in text
        assert f"artifacts:  {ls_home}" in text
        assert "auth:       off" in text
        assert f"API docs:   {url}/docs" in text
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_no_access_log_logs_no_requests(ls_home: Path) -> None:
    proc, url = start_server(
        {**os.environ, "LOOPSTACK_HOME": str(ls_home)}, args=("--no-access-log",)
    )
    try:
        httpx.get(f"{url}/api/v1/experiments")
        text = _wait_for(proc, "access log: off")
        time.sleep(0.5)
        assert "GET /api/v1/experiments" not in server_output(proc), text
    finally:
        stop_server(proc)


def test_docs_load_every_asset_from_the_server_itself(live_server: str) -> None:
    page = httpx.get(f"{live_server}/docs")
    assert page.status_code == 200
    refs = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    refs += re.findall(r"""url: ?['"]([^'"]+)['"]""", page.text)
    assert len(refs) >= 4, page.text
    for ref in refs:
        assert ref.startswith("/"), f"/docs loads {ref} from outside the server"
        asset = httpx.get(f"{live_server}{ref}")
        assert asset.status_code == 200, ref
    bundle = httpx.get(f"{live_server}/docs/assets/swagger-ui-bundle.js")
    assert len(bundle.content) > 1_000_000 and bundle.headers["content-type"].startswith(
        "text/javascript"
    )
    missing = httpx.get(f"{live_server}/docs/assets/..%2F..%2F_app.py")
    assert missing.status_code == 404
