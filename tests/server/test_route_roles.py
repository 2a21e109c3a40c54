"""Every route of the OpenAPI spec, called by every role and by nobody, against the declared
matrix in loopstack/server/_route_roles.py. test_cross_project_reads.py walks every read
route again as a member of another project."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from loopstack import auth
from loopstack.auth import Role
from loopstack.server import create_app
from loopstack.server._route_roles import GLOBAL_ADMIN, ROUTE_ROLES, minimum_role
from loopstack.store import open_stores
from tests.conftest import ThreadedServer

CALLERS = ["anonymous", "viewer", "data-scientist", "ml-engineer", "project-admin", "root"]


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> tuple[ThreadedServer, dict[str, str], dict]:
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = open_stores().db
    tokens = {"root": auth.create_token(db, name="root", user="root")[0]}  # bootstrap admin
    for role in ("viewer", "data-scientist", "ml-engineer"):
        auth.create_user(db, role, actor="root")
        auth.add_member(db, "default", role, role, actor="root")
        tokens[role] = auth.create_token(db, name=role, user=role, actor="root")[0]
    auth.create_user(db, "padmin", actor="root")
    auth.add_member(db, "default", "padmin", "admin", actor="root")
    tokens["project-admin"] = auth.create_token(db, name="pa", user="padmin", actor="root")[0]
    app = create_app()
    names: dict[tuple[str, str], str] = {}
    for router in [*app.state.routers, app.router]:
        for r in router.routes:
            if isinstance(r, APIRoute):
                for m in r.methods:
                    path = re.sub(
                        r"\{(\w+)(:path)?\}",
                        r"{\1}",
                        router.prefix + r.path
                        if hasattr(router, "prefix") and not r.path.startswith(router.prefix)
                        else r.path,
                    )
                    names[(m, path)] = r.name
    with ThreadedServer(app) as server:
        yield server, tokens, names


def _expected(caller: str, need: Role | str | None) -> str:
    if need is None:
        return "allowed"
    if caller == "anonymous":
        return "401"
    if need == GLOBAL_ADMIN:
        return "allowed" if caller == "root" else "403"
    rank = {
        "viewer": Role.VIEWER,
        "data-scientist": Role.DATA_SCIENTIST,
        "ml-engineer": Role.ML_ENGINEER,
        "project-admin": Role.ADMIN,
        "root": Role.ADMIN,
    }
    assert isinstance(need, Role)
    return "allowed" if rank[caller] >= need else "403"


def test_every_route_answers_every_caller_as_declared(setup: tuple) -> None:
    server, tokens, names = setup
    with httpx.Client(base_url=server.url, timeout=30) as http:
        spec = http.get("/openapi.json", headers={"Authorization": f"Bearer {tokens['root']}"})
        assert spec.status_code == 200
        operations = [(m.upper(), p) for p, ops in spec.json()["paths"].items() for m in ops]
        assert len(operations) > 100
        mismatches = []
        for method, path in operations:
            name = names[(method, path)]
            need = minimum_role(name)
            url = re.sub(r"\{[^}]+\}", "x", path)
            for caller in CALLERS:
                headers = (
                    {} if caller == "anonymous" else {"Authorization": f"Bearer {tokens[caller]}"}
                )
                kwargs: dict = {"headers": headers}
                if method in ("POST", "PUT", "PATCH"):
                    kwargs["json"] = {}
                status = http.request(method, url, **kwargs).status_code
                got = "401" if status == 401 else "403" if status == 403 else "allowed"
                if status >= 500:
                    got = f"server error {status}"
                want = _expected(caller, need)
                if got != want:
                    mismatches.append(
                        f"{method} {path} ({name}) as {caller}: expected {want}, got {status}"
                    )
        assert mismatches == []
        # The spec and docs need a token too; only /health is public.
        assert http.get("/openapi.json").status_code == 401
        assert http.get("/docs").status_code == 401
        assert http.get("/health").status_code == 200


def test_every_declared_route_exists_and_a_new_route_must_declare_its_role() -> None:
    from fastapi import APIRouter

    from loopstack.server import create_serving_app
    from loopstack.server._route_roles import check_every_route_is_declared

    app = create_app()
    declared = set(ROUTE_ROLES)
    present = {
        r.name.removesuffix("_ajax")
        for served in (app, create_serving_app([], start=False))  # one table for both apps
        for router in [*served.state.routers, served.router]
        for r in router.routes
        # the serving app's hot routes (predict, infer) are plain Starlette ones
        if isinstance(r, APIRoute)
        or getattr(r, "name", None) in ("serving_predict", "oip_infer", "oip_version_infer")
    }
    assert declared == present
    extra = APIRouter()

    @extra.get("/x", name="brand_new_route")
    def _x() -> dict:
        return {}

    with pytest.raises(RuntimeError, match="brand_new_route"):
        check_every_route_is_declared([r.name for r in extra.routes])


def test_outsiders_do_not_see_a_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = open_stores().db
    root = auth.create_token(db, name="root", user="root")[0]
    auth.create_project(db, "secret-lab", actor="root")
    auth.create_user(db, "alice", actor="root")
    auth.create_user(db, "bob", actor="root")
    auth.add_member(db, "secret-lab", "alice", "data-scientist", actor="root")
    auth.add_member(db, "default", "bob", "data-scientist", actor="root")
    alice = auth.create_token(db, name="a", user="alice", actor="root")[0]
    bob = auth.create_token(db, name="b", user="bob", actor="root")[0]
    lab = {"X-Loopstack-Project": "secret-lab"}
    with ThreadedServer(create_app()) as server, httpx.Client(base_url=server.url) as http:
        as_alice = {"Authorization": f"Bearer {alice}", **lab}
        exp = http.post("/api/v1/experiments", json={"name": "lab-exp"}, headers=as_alice)
        assert exp.status_code == 200, exp.text
        eid = exp.json()["experiment_id"]
        run = http.post("/api/v1/runs", json={"experiment_id": eid}, headers=as_alice).json()
        as_bob = {"Authorization": f"Bearer {bob}"}
        # Bob is not in the lab: the project, its experiment and its run do not exist for him.
        r = http.get("/api/v1/experiments", headers={**as_bob, **lab})
        assert r.status_code == 404 and "secret-lab" in r.json()["message"]
        assert http.get(f"/api/v1/experiments/{eid}", headers=as_bob).status_code == 404
        assert http.get(f"/api/v1/runs/{run['run_id']}", headers=as_bob).status_code == 404
        assert (
            http.get(f"/api/2.0/mlflow/runs/get?run_id={run['run_id']}", headers=as_bob).status_code
            == 404
        )
        assert (
            http.get(f"/api/2.0/mlflow-artifacts/artifacts?path={eid}", headers=as_bob).status_code
            == 404
        )
        names = [p["name"] for p in http.get("/api/v1/projects", headers=as_bob).json()["projects"]]
        assert names == ["default"]
        # Alice sees her run; root (a global admin) sees everything.
        assert http.get(f"/api/v1/runs/{run['run_id']}", headers=as_alice).status_code == 200
        assert (
            http.get(
                f"/api/v1/runs/{run['run_id']}", headers={"Authorization": f"Bearer {root}", **lab}
            ).status_code
            == 200
        )


def test_registry_over_http_promotion_needs_another_ml_engineer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = open_stores().db
    auth.create_token(db, name="root", user="root")
    tokens = {}
    for user, role in (
        ("dana", "data-scientist"),
        ("mia", "ml-engineer"),
        ("max", "ml-engineer"),
        ("ada", "admin"),
    ):
        auth.create_user(db, user, actor="root")
        auth.add_member(db, "default", user, role, actor="root")
        tokens[user] = {
            "Authorization": "Bearer "
            + auth.create_token(db, name=user, user=user, actor="root")[0]
        }
    with ThreadedServer(create_app()) as server, httpx.Client(base_url=server.url) as http:
        v = http.post(
            "/api/v1/models/churn/versions",
            json={"source": "s", "files": {}},
            headers=tokens["mia"],
        )
        assert v.status_code == 200, v.text
        direct = http.put(
            "/api/v1/models/churn/aliases/production", json={"version": 1}, headers=tokens["mia"]
        )
        assert direct.status_code == 403 and "approved request" in direct.json()["message"]
        req = http.post(
            "/api/v1/models/churn/promotions", json={"version": 1}, headers=tokens["dana"]
        ).json()
        rid = req["request_id"]
        # a data scientist may not approve; the author may not approve their own version
        assert (
            http.post(
                f"/api/v1/approvals/{rid}/approve", json={}, headers=tokens["dana"]
            ).status_code
            == 403
        )
        own = http.post(f"/api/v1/approvals/{rid}/approve", json={}, headers=tokens["mia"])
        assert own.status_code == 403 and "own promotion" in own.json()["message"]
        ok = http.post(
            f"/api/v1/approvals/{rid}/approve", json={"comment": "ship it"}, headers=tokens["max"]
        )
        assert ok.status_code == 200 and ok.json()["state"] == "approved"
        prod = http.get("/api/v1/models/churn/aliases/production", headers=tokens["dana"])
        assert prod.json()["version"] == 1
        # the production override is an admin's
        http.post(
            "/api/v1/models/churn/versions",
            json={"source": "s", "files": {}},
            headers=tokens["mia"],
        )
        body = {"version": 2, "override": True}
        assert (
            http.put(
                "/api/v1/models/churn/aliases/production", json=body, headers=tokens["max"]
            ).status_code
            == 403
        )
        assert (
            http.put(
                "/api/v1/models/churn/aliases/production", json=body, headers=tokens["ada"]
            ).status_code
            == 200
        )
        assert http.get("/api/v1/approvals/x/approve", headers=tokens["max"]).status_code == 405
        missing = http.post(
            "/api/v1/models/churn/promotions", json={"version": 9}, headers=tokens["dana"]
        )
        assert missing.status_code == 404
