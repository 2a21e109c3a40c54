"""The one seam through which a run logs a model, so tracking never imports the registry.

Packaging and registering a model is the registry's job, and the registry builds on
tracking (it reads runs and writes their artifacts). ``ActiveRun.log_model`` is the
user's natural spelling, so tracking keeps the verb and calls whatever model logger was
installed here; ``loopstack/__init__.py``, the layer above both, installs the
registry's ``log_model`` (imported on first use, so ``import loopstack`` stays light).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loopstack.errors import Invalid

__all__ = ["ModelLogger", "model_logger", "set_model_logger"]

#: ``fn(run_id, model, **options)`` -> the registered version, or None
ModelLogger = Callable[..., Any]

_logger: ModelLogger | None = None


def set_model_logger(fn: ModelLogger | None) -> None:
    """Install the function ``ActiveRun.log_model`` delegates to (``None`` removes it)."""
    global _logger
    _logger = fn


def model_logger() -> ModelLogger:
    """The installed model logger; ``Invalid`` when none is (tracking used on its own)."""
    if _logger is None:
        raise Invalid(
            "no model logger is installed: run.log_model needs the model registry "
            "(import loopstack, which installs loopstack.registry.log_model)"
        )
    return _logger
