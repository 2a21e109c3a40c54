"""The server's own surface: health, Prometheus metrics, OpenAPI, errors, auth."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loopstack.auth import create_token, revoke_token
from loopstack.server import create_app
from loopstack.store import open_stores
from tests.conftest import ThreadedServer


@pytest.fixture
def server() -> ThreadedServer:
    with ThreadedServer(create_app()) as srv:
        yield srv


def test_health_openapi_and_prometheus_metrics(server: ThreadedServer) -> None:
    # the first /openapi.json builds the spec (about 1 s here, over 5 under a loaded suite)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.get("/health").json()["status"] == "ok"
        spec = http.get("/openapi.json").json()
        assert "/api/v1/runs/{run_id}" in spec["paths"]
        http.get("/api/v1/runs/nope")
        text = http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = families["loopstack_http_requests"]
    by_route = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in requests.samples
        if s.name.endswith("_total")
    }
    assert by_route[("/health", "200")] == 1.0
    assert by_route[("/api/v1/runs/{run_id}", "404")] == 1.0
    errors = families["loopstack_http_errors"]
    assert any(s.labels["status"] == "404" for s in errors.samples)
    assert "loopstack_http_request_duration_seconds" in families


def test_errors_are_json_with_status_and_message(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        r = http.get("/api/v1/runs/deadbeef")
        assert r.status_code == 404
        assert r.json() == {"error": "NotFound", "message": "no run with id 'deadbeef'"}
        run = http.post("/api/v1/runs", json={"experiment_id": "0"}).json()
        bad = http.post(
            f"/api/v1/runs/{run['run_id']}/batch",
            json={"metrics": [{"key": "loss", "value": "abc", "timestamp": 1}]},
        )
        assert bad.status_code == 422 and bad.json()["field"] == "metrics.loss"
        missing = http.post("/api/v1/runs/search", json={})
        assert missing.status_code == 422 and "experiment_ids" in missing.json()["message"]
        junk = http.post(
            "/api/v1/runs", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert junk.status_code == 422
        up = http.put(f"/api/v1/runs/{run['run_id']}/artifacts/..%2F..%2Fescape", content=b"x")
        assert up.status_code in (404, 422)


def test_auth_requires_a_valid_token_everywhere_but_health(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = open_stores().db
    secret, info = create_token(db, name="ci", user="alice")
    with ThreadedServer(create_app()) as srv, httpx.Client(base_url=srv.url) as http:
        assert http.get("/health").status_code == 200
        for path in (
            "/metrics",
            "/api/v1/experiments",
            "/api/2.0/mlflow/experiments/get?experiment_id=0",
        ):
            r = http.get(path)
            assert r.status_code == 401, path
        assert (
            http.get(
                "/api/v1/experiments", headers={"Authorization": "Bearer lst_wrong"}
            ).status_code
            == 401
        )
        good = {"Authorization": f"Bearer {secret}"}
        assert http.get("/api/v1/experiments", headers=good).status_code == 200
        run = http.post("/api/v1/runs", json={"experiment_id": "0"}, headers=good).json()
        assert run["user_id"] == "alice"
        events = http.get("/api/v1/audit/events", headers=good).json()["events"]
        assert events[-1]["actor"] == "alice"
        revoke_token(db, info.token_id)
        assert http.get("/api/v1/experiments", headers=good).status_code == 401


def test_tokens_are_stored_hashed() -> None:
    from sqlalchemy import text

    db = open_stores().db
    secret, _ = create_token(db, name="x", user="bob")
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash, prefix FROM tokens")).one()
    assert secret not in stored and stored.token_hash != secret and len(stored.token_hash) == 64
