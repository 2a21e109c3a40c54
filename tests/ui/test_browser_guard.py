"""Where Chromium or Playwright is missing, the browser tests skip and say why; under CI
(``.ci/run`` installs both) they fail instead, so a CI run cannot pass without them."""

from __future__ import annotations

import pytest

from tests.ui import conftest


def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI the browser tests must run"):
        conftest._missing("/usr/bin/chromium is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        conftest._missing("/usr/bin/chromium is not installed")
