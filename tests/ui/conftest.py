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

__all__ = ["CHROMIUM", "chromium", "http", "mlflow_uri", "sign_in"]

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


def sign_in(page: Any, url: str, secret: str, who: str) -> None:
    """Sign in to the UI at ``url`` with the token ``secret``, from a clean storage, and
    wait for the header to name ``who`` (``"vera (viewer)"``)."""
    from playwright.sync_api import expect

    page.goto(f"{url}/#/")
    page.evaluate("localStorage.clear()")
    page.reload()
    page.fill("#token", secret)
    page.click("form.login button")
    expect(page.locator("#who")).to_have_text(who)
