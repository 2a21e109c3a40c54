"""Tracking never imports the registry: run.log_model goes through one installed hook."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import loopstack as ls
from loopstack.tracking._hooks import model_logger, set_model_logger

TRACKING = Path(ls.__file__).parent / "tracking"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_tracking_module_imports_the_registry() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in TRACKING.rglob("*.py")
        for name in _imported_modules(path)
        if name == "loopstack.registry" or name.startswith("loopstack.registry.")
    }
    assert offenders == set()


def test_importing_tracking_loads_no_registry() -> None:
    code = "import sys, loopstack.tracking; print('loopstack.registry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_import_loopstack_installs_the_registry_logger() -> None:
    installed = model_logger()
    assert installed.__module__ == "loopstack"


def test_without_a_logger_log_model_says_what_is_missing(ls_home: Path) -> None:
    installed = model_logger()
    set_model_logger(None)
    try:
        with (
            ls.start_run(experiment="hook") as run,
            pytest.raises(ls.Invalid, match="no model logger is installed"),
        ):
            run.log_model(object(), name="m")
    finally:
        set_model_logger(installed)
