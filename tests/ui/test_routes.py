"""The web UI as the server serves it: the shell at ``/``, its files under ``/ui/``,
every file the page loads present and local (no CDN), a strict Content-Security-Policy,
revalidation by ETag, public files with auth on while the API still asks for a token,
and the APIs beside it unchanged."""

from __future__ import annotations

import re

import httpx
import pytest

from loopstack import auth, ui
from loopstack.server import create_app
from loopstack.store import open_stores
from tests.conftest import ThreadedServer

SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def test_the_shell_is_served_at_the_root_with_a_policy_that_allows_only_this_server(
    http: httpx.Client,
) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert '<main id="main">' in page.text
    # the page's own files, by relative paths (a server behind a path prefix works too)
    loaded = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert loaded and all(ref.startswith("ui/") for ref in loaded), loaded


def test_every_file_the_page_loads_or_imports_is_served_and_none_comes_from_elsewhere(
    http: httpx.Client,
) -> None:
    html = http.get("/").text
    # each file named with its current digest (?v=), so the browser may keep it
    wanted = set(re.findall(r'(?:src|href)="ui/([^"]+)"', html))
    seen: set[str] = set()
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    while wanted - seen:
        ref = sorted(wanted - seen)[0]
        seen.add(ref)
        name, _, version = ref.partition("?v=")
        assert version == ui.asset_digest(name), ref
        got = http.get(f"/ui/{ref}")
        assert got.status_code == 200, name
        assert got.headers["content-type"].startswith(types[name[name.rindex(".") :]]), name
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable", ref
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([\w.-]+\.js\?v=\w+)"', got.text))
        # no absolute URL in any file but the SVG namespace (no CDN, no tracker)
        urls = set(re.findall(r"https?://[^\s\"'`)]+", got.text)) - {SVG_NAMESPACE}
        assert urls == set(), (name, urls)
    # every file the package ships is reachable from the shell: none is dead weight
    assert {ref.partition("?")[0] for ref in seen} | {ui.INDEX} == set(ui.asset_names())
    # asked for by an old digest (or none): revalidated, never kept
    assert http.get("/ui/app.js?v=0ld").headers["cache-control"] == "no-cache"
    assert http.get("/ui/app.js").headers["cache-control"] == "no-cache"
    assert http.get("/").headers["cache-control"] == "no-cache"


def test_the_shell_preloads_every_module_the_page_imports(http: httpx.Client) -> None:
    # the whole module graph fetched at once, not one level of imports after another
    html = http.get("/").text
    preloaded = re.findall(r'<link rel="modulepreload" href="ui/([^"?]+)\?v=\w+">', html)
    imported: set[str] = set()
    todo = ["app.js"]
    while todo:
        for name in re.findall(r'from "\./([\w.-]+\.js)\?', http.get(f"/ui/{todo.pop()}").text):
            if name not in imported:
                imported.add(name)
                todo.append(name)
    assert len(preloaded) == len(set(preloaded)) and set(preloaded) == imported - {"app.js"}
    assert "parcoords.js" in preloaded and "runs.js" in preloaded
    # before the entry script, so the fetches start together with it
    assert html.index("modulepreload") < html.index('<script type="module" src="ui/app.js?v=')


def test_a_head_request_answers_like_get_without_a_body(http: httpx.Client) -> None:
    for path in ("/", "/ui/style.css"):
        head, get = http.head(path), http.get(path)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["etag"] == get.headers["etag"], path
        assert head.headers["content-type"] == get.headers["content-type"], path


def test_an_unchanged_file_is_revalidated_with_a_304(http: httpx.Client) -> None:
    first = http.get("/ui/app.js")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = http.get("/ui/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other = http.get("/ui/app.js", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


@pytest.mark.parametrize("name", ["nope.js", "..%2Fpyproject.toml", "__init__.py", ".hidden"])
def test_a_file_the_ui_does_not_have_is_a_404_naming_those_it_has(
    http: httpx.Client, name: str
) -> None:
    got = http.get(f"/ui/{name}")
    assert got.status_code == 404
    body = got.json()
    assert body["error"] == "NotFound"
    if "%2F" not in name:  # a slash makes it another path, with no route at all
        assert "the web UI has no file" in body["message"] and "'app.js'" in body["message"]


def test_with_auth_on_the_page_is_public_and_the_api_behind_it_still_needs_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = open_stores().db
    root = auth.create_token(db, name="root", user="root")[0]
    with ThreadedServer(create_app()) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/").status_code == 200
        assert client.head("/").status_code == 200
        assert client.get("/ui/app.js").status_code == 200
        assert client.get("/api/v1/experiments").status_code == 401
        assert client.get("/api/v1/whoami").status_code == 401
        signed = {"Authorization": f"Bearer {root}"}
        assert client.get("/api/v1/experiments", headers=signed).status_code == 200


def test_the_apis_beside_the_ui_answer_as_before(http: httpx.Client) -> None:
    assert http.get("/api/v1/experiments").json()["experiments"][0]["name"] == "Default"
    mlflow = http.post("/api/2.0/mlflow/experiments/search", json={"max_results": 10})
    assert mlflow.status_code == 200 and mlflow.json()["experiments"][0]["experiment_id"] == "0"
    unknown = http.get("/api/2.0/mlflow/no-such-endpoint")
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert http.get("/no-such-page").status_code == 404


def test_the_ui_package_names_its_files_and_refuses_others() -> None:
    assert {"index.html", "app.js", "runs.js", "run.js", "chart.js", "style.css"} <= set(
        ui.asset_names()
    )
    body, media_type = ui.asset("index.html")
    assert media_type == "text/html; charset=utf-8" and body.startswith(b"<!doctype html>")
    from loopstack.errors import NotFound

    with pytest.raises(NotFound, match="has no file 'x.py'"):
        ui.asset("x.py")
