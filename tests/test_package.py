"""The package's public surface."""

from __future__ import annotations

import subprocess
import sys

import loopstack
from loopstack import errors


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert loopstack.__all__ == sorted(loopstack.__all__)
    for name in loopstack.__all__:
        assert getattr(loopstack, name) is not None, name


def test_import_loopstack_stays_light() -> None:
    code = (
        "import sys, loopstack; heavy = [m for m in ('sqlalchemy', 'fastapi', 'pandas', "
        "'uvicorn', 'pyarrow', 'numpy') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_error_carries_an_http_status() -> None:
    expected = {
        "NotFound": 404,
        "Invalid": 422,
        "Conflict": 409,
        "AlreadyExists": 409,
        "Forbidden": 403,
        "Unauthenticated": 401,
        "Overloaded": 503,
    }
    for name, status in expected.items():
        cls = getattr(errors, name)
        assert issubclass(cls, errors.LoopstackError)
        assert cls.status_code == status
