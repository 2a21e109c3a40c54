"""The web UI that ``loopstack server`` serves at ``/``: one HTML shell, plain JavaScript
modules and a style sheet, all in ``static/`` (no build step, nothing fetched from
elsewhere). The page reads everything through the server's REST API with the caller's
token, so the server's roles decide what it may see and do.

This module only names and reads the files; the server's ``routes/ui.py`` serves them.

>>> body, media_type = asset("app.js")
"""

from __future__ import annotations

import hashlib
import re
import threading
from functools import cache
from pathlib import Path

from loopstack.errors import NotFound

__all__ = ["INDEX", "asset", "asset_digest", "asset_names", "module_graph"]

STATIC = Path(__file__).parent / "static"
#: the HTML shell: every page of the UI is this file and a route after ``#``
INDEX = "index.html"
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@cache
def asset_names() -> tuple[str, ...]:
    """The names of the UI's files, sorted (``app.js``, ``index.html``, ...)."""
    return tuple(
        sorted(p.name for p in STATIC.iterdir() if p.is_file() and p.suffix in _MEDIA_TYPES)
    )


@cache
def asset(name: str) -> tuple[bytes, str]:
    """The bytes and media type of the UI file ``name``; ``NotFound`` naming the files
    there are for any other name (a path, a file of another kind)."""
    if name not in asset_names():
        shown = name[:80]
        raise NotFound(f"the web UI has no file {shown!r}; it has {list(asset_names())}")
    path = STATIC / name
    body = path.read_bytes()
    if name == INDEX:
        body = _versioned(_preloaded(body.decode()), _REFERENCE, set()).encode()
    elif path.suffix == ".js":
        body = _versioned(body.decode(), _IMPORT_REF, {name}).encode()
    return body, _MEDIA_TYPES[path.suffix]


#: a file named by the shell (``src="ui/app.js"``) or imported by a module (``"./dom.js"``)
_REFERENCE = re.compile(r'((?:src|href)="ui/)([\w.-]+\.\w+)(")')
_IMPORT_REF = re.compile(r'(from "\./)([\w.-]+\.js)(")')
_resolving: set[str] = set()
_resolving_lock = threading.RLock()  # the server's threads read the files at once


def _versioned(text: str, pattern: re.Pattern[str], here: set[str]) -> str:
    """``text`` with each file it names given ``?v=<its digest>``: a new version of a
    file is a new address, so the browser may keep every file but the shell (see
    ``routes/ui.py``). A file in an import cycle back to this one keeps its plain name."""

    def add(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in asset_names() or name in _resolving:
            return m.group(0)
        return f"{m.group(1)}{name}?v={asset_digest(name)}{m.group(3)}"

    with _resolving_lock:
        _resolving.update(here)
        try:
            return pattern.sub(add, text)
        finally:
            _resolving.difference_update(here)


_ENTRY = re.compile(r'<script type="module" src="ui/([\w.-]+\.js)"></script>')
_IMPORT = re.compile(r'from "\./([\w.-]+\.js)"')


def module_graph(entry: str) -> list[str]:
    """The modules ``entry`` imports, directly or not, in the order they are found."""
    found: list[str] = []
    todo = [entry]
    while todo:
        name = todo.pop(0)
        if name in found or name not in asset_names():
            continue
        found.append(name)
        todo.extend(_IMPORT.findall((STATIC / name).read_text()))
    return found[1:]


def _preloaded(html: str) -> str:
    """The shell with a ``<link rel="modulepreload">`` for every module its entry script
    imports, directly or not: the browser fetches the whole graph at once rather than
    one level of imports after another (three round trips before the page can start)."""
    entry = _ENTRY.search(html)
    if entry is None:
        return html
    links = "".join(
        f'<link rel="modulepreload" href="ui/{name}">\n  ' for name in module_graph(entry.group(1))
    )
    return html[: entry.start()] + links + html[entry.start() :]


@cache
def asset_digest(name: str) -> str:
    """A short content digest of ``name``, for its ``ETag``."""
    return hashlib.sha256(asset(name)[0]).hexdigest()[:20]
