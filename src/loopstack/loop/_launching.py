"""How the controller launches a firing's pipeline: through ``loopstack.pipelines``
(imported when first used), in the firing's project, and how it reads a gate's "no"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loopstack.errors import GateFailed, Invalid, LoopstackError

__all__ = ["acting_in", "default_launch", "default_resume", "gate_failure"]


def _pipelines() -> Any:
    import importlib

    try:
        return importlib.import_module("loopstack.pipelines")
    except ImportError as exc:
        raise Invalid(
            f"the controller launches pipelines through loopstack.pipelines, which does not "
            f"import here ({exc})"
        ) from exc


def default_launch(entrypoint: str, params: dict[str, Any]) -> Any:
    """``loopstack.pipelines.run_entrypoint(entrypoint, params)``: the run it made."""
    return _pipelines().run_entrypoint(entrypoint, params)


def default_resume(run_uuid: str) -> Any:
    """``loopstack.pipelines.resume(run_uuid)``: the resumed run."""
    return _pipelines().resume(run_uuid)


def gate_failure(exc: BaseException) -> str | None:
    """The reason of a GateFailed behind ``exc`` (raised by a step and wrapped by the
    executor, or chained), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, GateFailed):
            return current.message
        current = current.__cause__ or current.__context__
    text = str(exc)
    return text if text.startswith("GateFailed") or "GateFailed:" in text else None


@contextmanager
def acting_in(db: Any, project_id: int) -> Iterator[None]:
    """The pipeline of a firing runs (and records its runs) in the firing's project."""
    from loopstack.auth import get_project
    from loopstack.config import chosen_project, set_project

    before = chosen_project()
    name: str | None
    try:
        name = get_project(db, project_id).name
    except LoopstackError:  # no such project row (a bare database): the default one
        name = before
    set_project(name)
    try:
        yield
    finally:
        set_project(before)
