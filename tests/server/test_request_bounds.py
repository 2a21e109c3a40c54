"""Bounded requests and answers: the token before the body, a body limit (413), MLflow's
batch limits, short error messages, every method in ``Allow``, and a spec that says so.

Against a live server (uvicorn in a thread) with httpx and the real mlflow client.
"""

from __future__ import annotations

import json
import socket
import tracemalloc
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from loopstack import auth
from loopstack.server import create_app
from loopstack.store import open_stores
from tests.conftest import ThreadedServer

MIB = 1024 * 1024
CHUNK = 64 * 1024


class Pulled:
    """A request body sent in chunks, counting how many the client got to send."""

    def __init__(self, total: int) -> None:
        self.chunks = total // CHUNK
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.sent += 1
            yield b" " * CHUNK


@pytest.fixture
def auth_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A server with auth on: (url, an admin's token)."""
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    token = auth.create_token(open_stores().db, name="root", user="root")[0]
    with ThreadedServer(create_app()) as server:
        yield server.url, token


@pytest.fixture
def small_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server (auth off) taking bodies of at most 1 MiB and uploads of at most 2 MiB."""
    monkeypatch.setenv("LOOPSTACK_MAX_BODY_MB", "1")
    monkeypatch.setenv("LOOPSTACK_MAX_UPLOAD_MB", "2")
    with ThreadedServer(create_app()) as server:
        yield server.url


def _raw_post(url: str, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    """POST with headers only (the body they announce is never sent); status, JSON body."""
    parts = urlsplit(url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            more = sock.recv(65536)
            if not more:
                break
            data += more
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


# -- item 3: authentication before parsing --------------------------------------------
def test_no_token_is_refused_before_the_body_is_read(auth_server: tuple[str, str]) -> None:
    url, _ = auth_server
    fifty = str(50 * MIB)
    json_type = {"Content-Type": "application/json", "Content-Length": fifty}
    # announced, never sent: the answer comes without a byte of it
    status, body = _raw_post(url, "/api/2.0/mlflow/runs/create", json_type)
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED", body
    status, body = _raw_post(url, "/api/v1/runs", {**json_type, "Authorization": "Bearer nope"})
    assert status == 401 and body["error"] == "Unauthenticated", body
    assert "unknown, revoked" in body["message"]


def test_a_streamed_body_without_a_token_is_not_read_whole(
    auth_server: tuple[str, str],
) -> None:
    url, _ = auth_server
    body = Pulled(50 * MIB)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        resp = httpx.post(
            f"{url}/api/2.0/mlflow/runs/log-batch",
            content=iter(body),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert resp.status_code == 401 and resp.json()["error_code"] == "UNAUTHENTICATED"
    assert body.sent < body.chunks  # answered before the client had sent it all
    assert peak < 20 * MIB, f"the process allocated {peak / MIB:.0f} MiB for a refused body"


def test_a_valid_token_still_reaches_the_route(auth_server: tuple[str, str]) -> None:
    url, token = auth_server
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        created = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
        assert created.status_code == 200, created.text
        assert http.get("/health", headers={"Authorization": ""}).status_code == 200


# -- item 3: bounded bodies -----------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "shape"), [("/api/2.0/mlflow/runs/create", "error_code"), ("/api/v1/runs", "error")]
)
def test_a_body_over_the_limit_is_413_naming_the_limit(
    small_server: str, path: str, shape: str
) -> None:
    json_type = {"Content-Type": "application/json"}
    announced = httpx.post(small_server + path, content=b" " * (2 * MIB), headers=json_type)
    streamed = httpx.post(small_server + path, content=iter(Pulled(8 * MIB)), headers=json_type)
    # not typed JSON: FastAPI itself reads it (the bad-string guard does not)
    untyped = httpx.post(
        small_server + path, content=iter(Pulled(8 * MIB)), headers={"Content-Type": "text/plain"}
    )
    for resp in (announced, streamed, untyped):
        assert resp.status_code == 413, resp.text
        message = resp.json()["message"]
        assert shape in resp.json()
        assert "1 MiB" in message and "LOOPSTACK_MAX_BODY_MB" in message, message


def test_a_legitimate_batch_fits_the_default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's largest log-batch: 1000 entities, values at the longest MLflow takes."""
    with ThreadedServer(create_app()) as server, httpx.Client(base_url=server.url) as http:
        run_id = http.post("/api/2.0/mlflow/runs/create", json={}).json()["run"]["info"]["run_id"]
        batch = {
            "run_id": run_id,
            "params": [{"key": f"p{i}", "value": "v" * 6000} for i in range(100)],
            "tags": [{"key": f"t{i}", "value": "v" * 8000} for i in range(100)],
            "metrics": [
                {"key": "k" * 250, "value": 1.0, "timestamp": 1, "step": i} for i in range(800)
            ],
        }
        resp = http.post("/api/2.0/mlflow/runs/log-batch", json=batch)
        assert resp.status_code == 200, resp.text[:300]


def test_uploads_have_their_own_larger_limit(small_server: str) -> None:
    with httpx.Client(base_url=small_server, timeout=60) as http:
        run_id = http.post("/api/v1/runs", json={}).json()["run_id"]
        octets = {"Content-Type": "application/octet-stream"}
        # over the 1 MiB body limit, under the 2 MiB upload limit: stored
        fits = http.put(
            f"/api/v1/runs/{run_id}/artifacts/a.bin", content=b"x" * (3 * MIB // 2), headers=octets
        )
        assert fits.status_code == 200 and fits.json()["size"] == 3 * MIB // 2, fits.text
        for content in (b"x" * (3 * MIB), iter(Pulled(3 * MIB))):
            resp = http.put(f"/api/v1/runs/{run_id}/artifacts/b.bin", content=content)
            assert resp.status_code == 413, resp.text
            assert "LOOPSTACK_MAX_UPLOAD_MB" in resp.json()["message"]
        listed = http.get(f"/api/v1/runs/{run_id}/artifacts").json()["files"]
        assert [f["path"] for f in listed] == ["a.bin"]  # nothing of the refused one


# -- item 3: MLflow's limits on tags and params ----------------------------------------
def test_100000_tags_in_runs_create_are_refused(http: httpx.Client) -> None:
    tags = [{"key": f"t{i}", "value": "v"} for i in range(100_000)]
    mlflow = http.post("/api/2.0/mlflow/runs/create", json={"tags": tags})
    assert mlflow.status_code == 400, mlflow.text[:300]
    assert mlflow.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "at most 1000 tags and params" in mlflow.json()["message"]
    native = http.post("/api/v1/runs", json={"tags": {f"t{i}": "v" for i in range(100_000)}})
    assert native.status_code == 422 and native.json()["field"] == "tags", native.text[:300]
    runs = http.post("/api/v1/runs/search", json={"experiment_ids": ["0"]}).json()["runs"]
    assert runs == []  # nothing was written


def test_the_mlflow_client_is_refused_with_mlflows_message(mlflow_uri: str) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    with pytest.raises(MlflowException) as refused:
        client.create_run("0", tags={f"t{i}": "v" for i in range(5000)})
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    run_id = client.create_run("0").info.run_id
    # the client splits params into batches of 100 as MLflow's server wants...
    client.log_batch(run_id, params=[Param(f"p{i}", "v") for i in range(250)])
    assert len(client.get_run(run_id).data.params) == 250
    # ...and a raw batch of 101 gets MLflow's own words
    resp = httpx.post(
        f"{mlflow_uri}/api/2.0/mlflow/runs/log-batch",
        json={"run_id": run_id, "params": [{"key": f"q{i}", "value": "v"} for i in range(101)]},
    )
    assert resp.status_code == 400
    assert resp.json()["message"].startswith(
        "A batch logging request can contain at most 100 params. Got 101 params."
    )


def test_the_local_store_keeps_the_same_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    import loopstack as ls
    from loopstack.errors import Invalid
    from loopstack.tracking import _entities
    from loopstack.tracking._client import TrackingClient

    client = TrackingClient()
    run = client.create_run("0")
    with pytest.raises(Invalid, match="at most 100 tags. Got 101 tags"):
        client.store.log_batch(run.run_id, tags={f"t{i}": "v" for i in range(101)})
    with pytest.raises(Invalid, match="at most 1000 tags and params"):
        client.create_run(
            "0",
            tags={f"t{i}": "v" for i in range(600)},
            params={"a": "1"} | {f"p{i}": "v" for i in range(600)},
        )
    # the client splits what one write cannot take, as MLflow's does
    with ls.start_run() as active:
        active.log_params({f"p{i}": i for i in range(250)})
    assert len(client.get_run(active.run_id).params) == 250
    # a run holds at most MAX_TAGS_PER_RUN tags (lowered here to keep the test small)
    monkeypatch.setattr(_entities, "MAX_TAGS_PER_RUN", 150)
    client.store.log_batch(run.run_id, tags={f"a{i}": "v" for i in range(100)})
    with pytest.raises(Invalid, match="at most 150 tags; this write would leave it with 2"):
        client.store.log_batch(run.run_id, tags={f"b{i}": "v" for i in range(100)})
    assert len(client.get_run(run.run_id).tags) == 101  # runName and the first 100, no more


# -- item 4: bounded answers ----------------------------------------------------------
def test_a_422_on_a_large_body_is_a_short_answer(http: httpx.Client) -> None:
    big = "x" * (5 * MIB)
    answers = [
        http.post("/api/v1/experiments", json={"nam": big}),  # a missing field
        http.post("/api/v1/runs", json={"experiment_id": [big]}),  # a wrong type
        http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": [big]}),
        http.post(
            "/api/2.0/mlflow/runs/log-batch",
            json={"run_id": "r", "metrics": [{"key": "m", "value": big, "timestamp": 1}]},
        ),
    ]
    for resp in answers:
        assert resp.status_code in (400, 404, 422), resp.text[:300]
        assert len(resp.content) < 2000, resp.text[:300]
    message = answers[0].json()["message"]
    assert "name: Field required" in message and "characters)" in message, message


# -- item 8: MLflow's shape everywhere, Allow, and the spec -----------------------------
def test_405_allow_lists_every_method_of_the_path(http: httpx.Client) -> None:
    for method, path, allowed in [
        ("PUT", "/api/2.0/mlflow/experiments/search", "GET, POST"),
        ("DELETE", "/api/v1/experiments", "GET, POST"),
        ("POST", "/api/v1/runs/abc/artifacts/a/b.txt", "GET, PUT"),
    ]:
        resp = http.request(method, path)
        assert resp.status_code == 405 and resp.headers["allow"] == allowed, (path, resp.headers)
        assert allowed in resp.json()["message"]


def test_mlflow_routes_answer_mlflows_shape(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    slash = http.post("/api/2.0/mlflow/runs/create/", json={})
    assert slash.status_code == 404 and slash.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    not_utf8 = http.post(
        "/api/2.0/mlflow/runs/create",
        content=b'{"run_name": "\xff"}',
        headers={"Content-Type": "application/json"},
    )
    assert not_utf8.status_code == 400 and not_utf8.json()["error_code"] == (
        "INVALID_PARAMETER_VALUE"
    )
    unparsable = http.post(
        "/api/2.0/mlflow/runs/create", content=b'{"a"', headers={"Content-Type": "text/plain"}
    )
    assert unparsable.status_code == 400 and "error_code" in unparsable.json()
    from loopstack.tracking._sql_store import SqlTrackingStore

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(SqlTrackingStore, "get_run", broken)  # a bug in a handler
    bug = http.get("/api/2.0/mlflow/runs/get", params={"run_id": "r"})
    assert bug.status_code == 500 and bug.json()["error_code"] == "INTERNAL_ERROR", bug.text
    native = http.get("/api/v1/runs/r")
    assert native.status_code == 500 and native.json()["error"] == "LoopstackError", native.text


def test_the_spec_declares_bearer_auth_413_and_delete_bodies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    spec = create_app().openapi()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        **spec["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    assert spec["security"] == [{"bearer": []}]
    health = spec["paths"]["/health"]["get"]
    assert health["security"] == [] and "401" not in health["responses"]
    create = spec["paths"]["/api/2.0/mlflow/runs/create"]["post"]
    assert "413" in create["responses"] and "401" in create["responses"]
    upload = spec["paths"]["/api/2.0/mlflow-artifacts/artifacts/{artifact_path}"]["put"]
    assert "413" in upload["responses"]
    for path in [
        "/api/2.0/mlflow/registered-models/delete",
        "/api/2.0/mlflow/registered-models/delete-tag",
        "/api/2.0/mlflow/registered-models/alias",
        "/api/2.0/mlflow/model-versions/delete",
        "/api/2.0/mlflow/model-versions/delete-tag",
    ]:
        body = spec["paths"][path]["delete"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        assert "name" in schema["properties"] and "name" in schema["required"], (path, schema)
