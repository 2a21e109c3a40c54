"""Test doubles for the controller: a launcher that counts, an ``observe`` that answers
set metrics, a pipeline file."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PIPELINE = '''
import loopstack as ls


@ls.step
def note(rows: int = 0) -> int:
    return rows


@ls.pipeline
def training(rows: int = 0):
    """A small loopstack pipeline (the controller tests launch it through a double)."""
    note(rows=rows)
'''


def pipeline_file(where: Path) -> str:
    """A pipeline entrypoint ``path/file.py:training`` in ``where``."""
    path = where / "jobs_pipeline.py"
    path.write_text(PIPELINE)
    return f"{path}:training"


class Launcher:
    """Records each launch (entrypoint, params) and answers a finished run; ``fail``
    raises it instead."""

    def __init__(self, status: str = "FINISHED", fail: BaseException | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.status = status
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, entrypoint: str, params: dict[str, Any]) -> Any:
        with self._lock:
            self.calls.append((entrypoint, dict(params)))
        if self.fail is not None:
            raise self.fail
        return SimpleNamespace(run_uuid=uuid.uuid4().hex, status=self.status)


class FakeObserve:
    """``observe`` answering set metrics, remembering what it was asked."""

    def __init__(self, metrics: dict[str, float]) -> None:
        self.metrics = metrics
        self.asked: list[tuple[str, Any, Any]] = []

    def __call__(self, endpoint: str, window: Any, *, until: Any, **_: Any) -> Any:
        self.asked.append((endpoint, window, until))
        return SimpleNamespace(metrics=lambda: dict(self.metrics))
