"""The monitoring package's public surface: every exported name resolves, and the
alerting modules load neither SQLAlchemy nor httpx until a store or a sink needs them."""

from __future__ import annotations

import subprocess
import sys

import loopstack.monitoring as monitoring


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert monitoring.__all__ == sorted(monitoring.__all__)
    for name in monitoring.__all__:
        assert getattr(monitoring, name) is not None, name


def test_importing_alerting_stays_light() -> None:
    code = (
        "import sys; from loopstack.monitoring import _alerts, _alert_sinks; "
        "from loopstack.monitoring import AlertRule, AlertRouter, evaluate; "
        "print(','.join(m for m in ('sqlalchemy', 'httpx', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
