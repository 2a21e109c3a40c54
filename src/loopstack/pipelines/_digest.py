"""Digests of a step: its code, its environment, and the cache key made of them.

The cache key is the sha256 of canonical JSON holding the step's code digest, the
sha256 of each input artifact (content, not ids), its bound params and its
environment (the Python version and the versions of the distributions whose modules
the step's function refers to). Same key, same outputs: the step is skipped.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import marshal
import sys
import textwrap
import types
from collections.abc import Callable, Mapping
from typing import Any

from loopstack.errors import Invalid

__all__ = ["cache_key", "canonical_json", "code_digest", "environment"]


def canonical_json(value: Any, *, what: str = "the value") -> str:
    """``value`` as canonical JSON (sorted keys, no spaces); Invalid if it is not JSON."""
    bad = _not_json(value)
    if bad is not None:
        raise Invalid(
            f"{what} must be a JSON value (int, float, str, bool, None, lists and dicts "
            f"with str keys of those); got {_preview(value)} instead ({bad})"
        )
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"{what} must be a JSON value (int, float, str, bool, None, lists and dicts "
            f"with str keys of those); got {_preview(value)} instead ({exc})"
        ) from exc


def _not_json(value: Any) -> str | None:
    """Why ``value`` is not plain JSON (``None``: it is)."""
    if isinstance(value, float):
        return None if value == value and abs(value) != float("inf") else f"{value} is no number"
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, (list, tuple)):
        return next((why for why in map(_not_json, value) if why), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"the key {key!r} is not a str"
            why = _not_json(item)
            if why:
                return why
        return None
    return f"a {type(value).__name__} is not JSON"


def _preview(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _source(fn: Callable[..., Any]) -> str:
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        return hashlib.sha256(marshal.dumps(code) if code else repr(fn).encode()).hexdigest()
    # the decorator line (retries, timeouts) does not change what the step computes
    lines = text.splitlines()
    while lines and lines[0].lstrip().startswith("@"):
        lines.pop(0)
    return "\n".join(lines)


def _called(fn: Callable[..., Any]) -> list[Callable[..., Any]]:
    """The functions of ``fn``'s own module (and closures) that its code names."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    names: set[str] = set(code.co_names)
    for const in code.co_consts:  # nested functions and comprehensions
        if isinstance(const, types.CodeType):
            names |= set(const.co_names)
    found: list[Callable[..., Any]] = []
    module = getattr(fn, "__module__", None)
    for name in sorted(names):
        value = getattr(fn, "__globals__", {}).get(name)
        value = getattr(value, "fn", value)  # a Step: the function it wraps
        if isinstance(value, types.FunctionType) and value.__module__ == module:
            found.append(value)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = getattr(cell.cell_contents, "fn", cell.cell_contents)
        except ValueError:  # an empty cell
            continue
        if isinstance(value, types.FunctionType):
            found.append(value)
    return found


def code_digest(fn: Callable[..., Any]) -> str:
    """sha256 of ``fn``'s source and of the same-module functions (and closures) it calls,
    transitively; what it calls in other modules counts through ``environment`` (their
    distributions' versions), not their source."""
    seen: dict[str, str] = {}
    todo = [fn]
    while todo:
        current = todo.pop()
        # by qualname, not module: the same code loaded as __main__ or by path is the same
        key = current.__qualname__
        if key in seen:
            continue
        seen[key] = _source(current)
        todo.extend(_called(current))
    return hashlib.sha256(canonical_json(seen).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()


@functools.lru_cache(maxsize=512)
def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def environment(fn: Callable[..., Any]) -> dict[str, Any]:
    """The Python version and ``{distribution: version}`` of the modules ``fn`` refers to."""
    tops: set[str] = set()
    for current in [fn, *_called(fn)]:
        env = getattr(current, "__globals__", {})
        names = set(getattr(getattr(current, "__code__", None), "co_names", ()))
        for name in names:
            value = env.get(name)
            if value is None:
                continue
            module = value.__name__ if isinstance(value, types.ModuleType) else None
            module = module or getattr(value, "__module__", None)
            if isinstance(module, str):
                tops.add(module.split(".")[0])
    packages: dict[str, str] = {}
    dists = _distributions()
    for top in sorted(tops):
        for dist in dists.get(top, []):
            found = _version(dist)
            if found is not None:
                packages[dist] = found
    return {"python": ".".join(map(str, sys.version_info[:3])), "packages": packages}


def cache_key(
    code: str, inputs: Mapping[str, str], params: Mapping[str, Any], env: Mapping[str, Any]
) -> str:
    """sha256 over the code digest, the inputs' content digests, params and environment."""
    body = {"code": code, "inputs": dict(inputs), "params": dict(params), "env": dict(env)}
    return hashlib.sha256(canonical_json(body, what="a step's params").encode()).hexdigest()
