"""The web UI that ``loopstack server`` serves at ``/``: one HTML shell, plain JavaScript
modules and a style sheet, all in ``static/`` (no build step, nothing fetched from
elsewhere). The page reads everything through the server's REST API with the caller's
token, so the server's roles decide what it may see and do.

This module only names and reads the files; the server's ``routes/ui.py`` serves them.

>>> body, media_type = asset("app.js")
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from loopstack.errors import NotFound

__all__ = ["INDEX", "asset", "asset_digest", "asset_names"]

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
    return path.read_bytes(), _MEDIA_TYPES[path.suffix]


@cache
def asset_digest(name: str) -> str:
    """A short content digest of ``name``, for its ``ETag``."""
    return hashlib.sha256(asset(name)[0]).hexdigest()[:20]
