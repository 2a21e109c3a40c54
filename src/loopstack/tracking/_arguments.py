"""The Python API's arguments checked where they enter: a wrong type is an ``Invalid``
naming the argument, what was expected and what came, never an ``AttributeError`` from
deep inside (``ls.log_params([("a", 1)])``) or a string read letter by letter
(``order_by="metrics.loss ASC"``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopstack.errors import Invalid

__all__ = ["mapping", "order_by_list", "text", "whole"]


def _got(value: Any) -> str:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{shown} ({type(value).__name__})"


def mapping(value: Any, name: str) -> dict[Any, Any]:
    """``value`` as a dict of keys to values; None is empty."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    raise Invalid(
        f"{name} must be a dict of keys to values, e.g. {{'lr': 0.1}}; got {_got(value)} instead",
        field=name,
    )


def text(value: Any, name: str) -> str:
    """``value`` as a string; None is empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise Invalid(f"{name} must be a string; got {_got(value)} instead", field=name)


def order_by_list(value: Any) -> list[str] | None:
    """MLflow's ``order_by``: a list of clauses; a single string is one clause."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise Invalid(
        "order_by must be a list of clauses such as ['metrics.auc DESC']; "
        f"got {_got(value)} instead",
        field="order_by",
    )


def whole(value: Any, name: str, *, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be a whole number; got {_got(value)} instead", field=name)
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise Invalid(f"{name} must be {bounds}; got {value}", field=name)
    return value
