"""The package's public surface."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


def test_the_wheel_and_the_sdist_ship_the_files_the_server_serves(tmp_path: Path) -> None:
    """Built from a copy of the project (the worktree stays clean): the web UI's files and
    the vendored docs assets are in both, or an installed server would answer 404."""
    import shutil
    import tarfile
    import zipfile

    pytest.importorskip("setuptools")
    root = Path(__file__).resolve().parents[1]
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, project / name)
    shutil.copytree(
        root / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    code = (
        "from setuptools import build_meta as b; "
        "w = b.build_wheel('dist'); s = b.build_sdist('dist'); print('BUILT', w, s)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = [line for line in done.stdout.splitlines() if line.startswith("BUILT ")]
    wheel_name, sdist_name = built.split()[1:]
    with zipfile.ZipFile(project / "dist" / wheel_name) as wheel:
        in_wheel = set(wheel.namelist())
    with tarfile.open(project / "dist" / sdist_name) as sdist:
        in_sdist = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    from loopstack import ui

    assert ui.asset_names(), "the UI has no files"
    shipped = [f"loopstack/ui/static/{name}" for name in ui.asset_names()]
    shipped += ["loopstack/server/static/swagger/swagger-ui-bundle.js"]
    assert [f for f in shipped if f not in in_wheel] == []
    assert [f for f in shipped if f"src/{f}" not in in_sdist] == []
