"""Fixtures of the web UI's tests: the server ones (``http``, ``mlflow_uri``) and a
headless Chromium (Debian's, driven by Playwright). Without Chromium or Playwright the
browser tests skip, except under CI (``.ci/run`` installs both), where they fail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import http, mlflow_uri

__all__ = ["CHROMIUM", "chromium", "http", "mlflow_uri"]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}; under CI the browser tests must run")
    pytest.skip(what)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``), closed after the test."""
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -r requirements-test.txt)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
