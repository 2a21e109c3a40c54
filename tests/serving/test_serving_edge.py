"""The serving app's edge: tokens of the served project (401, 403), per-caller rate
limits (429 with Retry-After), every route declared, and the shutdown hooks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import httpx
import pytest

from loopstack import auth
from loopstack.errors import Forbidden, Invalid, Unauthenticated
from loopstack.server import add_shutdown_hook, create_serving_app
from loopstack.server._rate_limit import TokenBuckets
from loopstack.server._route_roles import minimum_role
from loopstack.server.routes import oip_v2, serving
from loopstack.serving import EndpointSpec, ServingRuntime
from loopstack.store import open_stores
from tests.conftest import ThreadedServer
from tests.serving.conftest import log_models


@dataclass
class Guarded:
    url: str
    tokens: dict[str, str]
    records: list[dict[str, float]]

    def predict(self, token: str | None, **kw: object) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.post(
            f"{self.url}/endpoints/iris/predict",
            json={"records": self.records},
            headers=headers,
            timeout=30,
            **kw,  # type: ignore[arg-type]
        )


def _people() -> dict[str, str]:
    """A bootstrap admin; alice, a viewer of default; bob, a data scientist of 'other'
    only; carol, of both, with a token scoped to 'other'."""
    db = open_stores().db
    root = auth.create_token(db, name="root", user="root")[0]
    auth.create_project(db, "other", actor="root")
    for user in ("alice", "bob", "carol"):
        auth.create_user(db, user, actor="root")
    auth.add_member(db, "default", "alice", "viewer", actor="root")
    auth.add_member(db, "other", "bob", "data-scientist", actor="root")
    auth.add_member(db, "default", "carol", "ml-engineer", actor="root")
    auth.add_member(db, "other", "carol", "viewer", actor="root")

    def token(user: str, project: str | None = None) -> str:
        return auth.create_token(db, name=f"{user}-t", user=user, project=project, actor="root")[0]

    return {
        "root": root,
        "alice": token("alice"),
        "bob": token("bob"),
        "carol-other": token("carol", "other"),
    }


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Guarded]:
    """The iris model served with auth on by the setting (and a rate limit off)."""
    X, _, _ = log_models()
    tokens = _people()
    monkeypatch.setenv("LOOPSTACK_SERVING_AUTH", "on")
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    with ThreadedServer(create_serving_app(runtime, start=False)) as server:
        yield Guarded(server.url, tokens, X.head(2).to_dict("records"))


def test_a_reader_of_the_served_project_is_let_in_and_others_are_not(guarded: Guarded) -> None:
    ok = guarded.predict(guarded.tokens["alice"])
    assert ok.status_code == 200, ok.text
    assert guarded.predict(guarded.tokens["root"]).status_code == 200  # a global admin

    missing = guarded.predict(None)
    assert missing.status_code == 401 and "bearer token" in missing.json()["message"]
    made_up = guarded.predict("lst_not-a-real-token")
    assert made_up.status_code == 401, made_up.text

    other = guarded.predict(guarded.tokens["bob"])
    assert other.status_code == 403, other.text
    assert "'default'" in other.json()["message"] and "'bob'" in other.json()["message"]
    scoped = guarded.predict(guarded.tokens["carol-other"])
    assert scoped.status_code == 403 and "scoped to another project" in scoped.json()["message"]
    again = guarded.predict(guarded.tokens["bob"])  # from the cache: the same answer
    assert (again.status_code, again.json()) == (403, other.json())

    # the OIP routes need the token too, in the protocol's error shape
    infer = httpx.post(f"{guarded.url}/v2/models/iris/infer", json={"inputs": []})
    assert infer.status_code == 401 and set(infer.json()) == {"error"}
    listed = httpx.get(f"{guarded.url}/endpoints")
    assert listed.status_code == 401
    spec = httpx.get(f"{guarded.url}/openapi.json")
    assert spec.status_code == 401
    # probes and scrapers need none
    for path in ("/health", "/metrics", "/v2/health/live", "/v2/health/ready"):
        assert httpx.get(f"{guarded.url}{path}").status_code == 200, path


def test_a_refused_token_is_refused_before_the_body_is_read(guarded: Guarded) -> None:
    huge = b'{"records": [' + b"1," * 5_000_000 + b"1]}"
    refused = httpx.post(
        f"{guarded.url}/endpoints/iris/predict",
        content=huge,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert refused.status_code == 401
    assert refused.headers.get("connection") == "close"


def test_a_caller_past_its_rate_gets_429_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    X, _, _ = log_models()
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    app = create_serving_app(runtime, start=False, rate_limit=0.2, rate_burst=3)
    records = X.head(1).to_dict("records")
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        statuses = [
            client.post("/endpoints/iris/predict", json={"records": records}).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        limited = client.post("/endpoints/iris/predict", json={"records": records})
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"] == "RateLimited"
        assert int(limited.headers["Retry-After"]) >= 1
        oip = client.get("/v2/models/iris")
        assert oip.status_code == 429 and set(oip.json()) == {"error"}
        for path in ("/health", "/metrics", "/v2/health/ready"):  # never limited
            assert client.get(path).status_code == 200


def test_the_rate_is_counted_per_token_with_auth_on(guarded: Guarded) -> None:
    app_tokens = guarded.tokens
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    app = create_serving_app(runtime, start=False, rate_limit=0.1, rate_burst=1)
    with ThreadedServer(app) as server:
        other = Guarded(server.url, app_tokens, guarded.records)
        assert other.predict(app_tokens["alice"]).status_code == 200
        assert other.predict(app_tokens["alice"]).status_code == 429
        # another token from the same address has a bucket of its own
        assert other.predict(app_tokens["root"]).status_code == 200
        # a made-up token is refused by the gate, not given a fresh bucket
        assert other.predict("lst_made-up").status_code == 401


def test_token_buckets_refill_at_the_rate_up_to_the_burst() -> None:
    buckets = TokenBuckets(rate=10, burst=2)
    assert [buckets.take("a", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("a", now=0.0) == pytest.approx(0.1)
    assert buckets.take("b", now=0.0) == 0.0  # one bucket per caller
    assert buckets.take("a", now=0.1) == 0.0  # one token back after 1/rate
    assert buckets.take("a", now=100.0) == 0.0  # full again, but never above the burst
    assert buckets.take("a", now=100.0) == 0.0
    assert buckets.take("a", now=100.0) > 0
    with pytest.raises(Invalid, match="positive"):
        TokenBuckets(rate=0)


def test_every_serving_route_is_declared_and_the_route_tables_agree() -> None:
    for table in (oip_v2.ROLES, serving.ROLES):
        for name, role in table.items():
            declared = minimum_role(name)
            assert (declared.value if declared is not None else None) == role, name
    public = {n for t in (oip_v2.ROLES, serving.ROLES) for n, r in t.items() if r is None}
    assert public == {"oip_live", "oip_ready"}


def test_shutdown_hooks_run_after_the_last_request(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    app = create_serving_app([], start=False)

    def failing() -> None:
        ran.append("failing")
        raise RuntimeError("a flush that fails")

    add_shutdown_hook(app, failing)
    add_shutdown_hook(app, lambda: ran.append("flushed"))

    async def serve_then_stop() -> None:
        async with app.router.lifespan_context(app):  # what uvicorn runs around serving
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/health")).status_code == 200
            assert ran == []

    anyio.run(serve_then_stop)
    assert ran == ["failing", "flushed"]  # one failing hook does not skip the next
    assert app.state.stop_refresh.is_set()


def test_access_answers_are_remembered_for_their_ttl_only() -> None:
    tokens = _people()
    db = open_stores().db
    header = f"Bearer {tokens['alice']}"
    remembered = auth.ProjectAccess(db, 0, project_name="default", ttl_s=3600)
    at_once = auth.ProjectAccess(db, 0, project_name="default", ttl_s=0)
    assert remembered.check(header).user == at_once.check(header).user == "alice"
    alice = next(t for t in auth.list_tokens(db, user="alice"))
    auth.revoke_token(db, alice.token_id, actor="root")
    assert remembered.cached(header) is not None  # within its TTL: no database read
    with pytest.raises(Unauthenticated):
        at_once.check(header)
    engineers = auth.ProjectAccess(db, 0, minimum=auth.Role.ML_ENGINEER)
    carol = auth.create_token(db, name="c2", user="carol", actor="root")[0]
    assert engineers.check(f"Bearer {carol}").user == "carol"  # an ml-engineer of default
    with pytest.raises(Forbidden, match="holds no role"):
        engineers.check(f"Bearer {tokens['bob']}")
    with pytest.raises(Forbidden):  # the refusal is remembered too, raised afresh
        engineers.cached(f"Bearer {tokens['bob']}")
