"""The web UI at ``/``: the HTML shell and its files under ``/ui/``.

Both routes are public: the files hold no data (the page asks the API for everything,
with the caller's token, and the API checks the caller's role). A strict
Content-Security-Policy lets the page load and call nothing but this server.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopstack.ui import INDEX, asset, asset_digest

__all__ = ["CONTENT_SECURITY_POLICY", "router"]

router = APIRouter(tags=["ui"], include_in_schema=False)

#: nothing from elsewhere: scripts, styles, images and API calls come from this server
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _serve(request: Request, name: str) -> Response:
    body, media_type = asset(name)
    etag = f'"{asset_digest(name)}"'
    # revalidated on every load (a 304 when unchanged): an upgraded server's page never
    # runs with a stale script. The shell names each file with its digest (?v=), and a
    # file asked for by its digest is kept: a fresh page asks for nothing but the shell.
    current = request.query_params.get("v") == asset_digest(name)
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=31536000, immutable" if current else "no-cache",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.api_route("/", methods=["GET", "HEAD"], name="ui_index")
def index(request: Request) -> Response:
    """The UI's shell; the route after ``#`` (``#/experiments/<id>/runs/<run_id>``, the
    links the MLflow client prints) picks the page."""
    return _serve(request, INDEX)


@router.api_route("/ui/{name}", methods=["GET", "HEAD"], name="ui_asset")
def ui_asset(request: Request, name: str) -> Response:
    """One of the UI's scripts or style sheets."""
    return _serve(request, name)
