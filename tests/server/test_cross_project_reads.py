"""No cross-project reads: every read route, walked as a member of project A, shows
nothing of project B.

Two projects hold one of each kind of object (experiment, run with a param, metric, tag
and artifact, dataset version, validation result, registered model with a version, an
alias and a promotion request, a deployment, lineage, entity, feature view and service,
MLflow logged model, pipeline run, trigger and its firing, audit events). Everything
of B is named with the marker ``bsecret`` or has an id collected at setup. Then every
read route of the OpenAPI spec (each GET, and each POST a viewer may call: the searches)
is called by A's ml-engineer, with a
token scoped to A and with an unscoped token of a user who is a member of A only: bare,
with A's ids, with B's ids (an object of B answers 404), and asking for B by header
(404). No response may hold anything of B, except an error echoing what the request
itself sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi.routing import APIRoute

import loopstack as ls
from loopstack import auth
from loopstack.auth import Role
from loopstack.server import create_app
from loopstack.server._route_roles import GLOBAL_ADMIN, minimum_role
from loopstack.store import audit, open_stores
from tests.conftest import ThreadedServer

pytestmark = pytest.mark.usefixtures("use_db")

A, B = "alpha-proj", "bsecret-proj"
MARKER = re.compile(r"[\w\-]*bsecret[\w\-]*", re.IGNORECASE)


def _fill(project: str, prefix: str, tmp_path: Path) -> dict[str, Any]:
    """One object of each kind in ``project``, named after ``prefix``; their ids."""
    from loopstack.registry import get_registry

    ls.set_project(project)
    data = ls.register_dataset(
        f"{prefix}-data", pd.DataFrame({"amount": [1.0, 2.0] if prefix == "alpha" else [3.0, 4.0]})
    )
    file = tmp_path / f"{prefix}-file.txt"
    file.write_text(f"{prefix} artifact")
    with ls.start_run(
        experiment=f"{prefix}-exp",
        run_name=f"{prefix}-run",
        params={f"{prefix}_param": f"{prefix}-value"},
        capture_env=False,
    ) as run:
        ls.log_metric(f"{prefix}_metric", 0.5, step=1)
        ls.set_tag(f"{prefix}_tag", f"{prefix}-tag-value")
        ls.log_artifact(file)
        run.log_input(data, context="training")
        report = ls.Suite(f"{prefix}-suite", [{"type": "row_count", "min": 1}]).validate(data)
    reg = get_registry(actor="root")
    sha = ("bb" if prefix == "bsecret" else "aa") * 32
    reg.create_model_version(
        f"{prefix}-model",
        source=f"runs:/{run.run_id}/model",
        files={"m.bin": sha},
        run_id=run.run_id,
    )
    reg.set_alias(f"{prefix}-model", f"{prefix}-alias", 1)
    request = reg.request_promotion(f"{prefix}-model", 1)
    ls.deployments(actor="root").create(f"{prefix}-deploy", f"{prefix}-model@{prefix}-alias")
    reg.create_model_version(
        f"{prefix}-model", source=f"runs:/{run.run_id}/model", files={"m.bin": sha}
    )
    from loopstack.loop import CanaryStep, RolloutPlan, rollouts

    plan = RolloutPlan(steps=[CanaryStep(0.05, 600)], require_approval=False)
    # its files are not a model the gates could evaluate: the admin forces it past them
    rollout = rollouts(actor="root").start(
        f"{prefix}-deploy", f"{prefix}-model", 2, plan, force=True, reason="no model files"
    )
    flow = tmp_path / f"{prefix}_flow.py"
    flow.write_text(
        "import loopstack as ls\n\n"
        f"@ls.step\ndef {prefix}_step(n: int = 2) -> int:\n    return n * 2\n\n"
        f"@ls.pipeline(name='{prefix}-flow')\ndef flow():\n    {prefix}_step()\n"
    )
    pipeline_run = ls.pipelines.run_entrypoint(f"{flow}:flow").run_uuid
    from loopstack.loop import Trigger, triggers

    trigger = triggers(actor="root")
    trigger.add(Trigger(f"{prefix}-trigger", "manual", f"{flow}:flow"))
    trigger.fire_manual(f"{prefix}-trigger", f"{prefix}-reason")
    path = tmp_path / f"{prefix}.parquet"
    pd.DataFrame(
        {f"{prefix}_id": [1, 2], "event_timestamp": pd.Timestamp("2024-03-01"), "rate": [0.1, 0.2]}
    ).to_parquet(path)
    entity = ls.Entity(f"{prefix}_driver", join_keys=[f"{prefix}_id"])
    view = ls.FeatureView(
        f"{prefix}_view",
        entities=[entity],
        source=ls.FileSource(path),
        schema=[ls.Field("rate", "float64")],
    )
    service = ls.FeatureService(f"{prefix}_service", features=[view])
    ls.FeatureStore().apply([entity, view, service])
    ls.set_project(None)
    return {
        "exp_name": f"{prefix}-exp",
        "exp_id": run.experiment_id,
        "run_id": run.run_id,
        "metric": f"{prefix}_metric",
        "artifact": file.name,
        "model": f"{prefix}-model",
        "deployment": f"{prefix}-deploy",
        "rollout_id": rollout.rollout_id,
        "pipeline_run": pipeline_run,
        "trigger": f"{prefix}-trigger",
        "alias": f"{prefix}-alias",
        "request_id": request.request_id,
        "result_id": report.result_id,
        "dataset": f"{prefix}-data",
        "dataset_digest": data.digest,
        "sha": sha,
        "entity": f"{prefix}_driver",
        "join_key": f"{prefix}_id",
        "view": f"{prefix}_view",
        "service": f"{prefix}_service",
    }


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    db = open_stores().db
    auth.create_project(db, A, actor="root")
    auth.create_project(db, B, actor="root")
    objects = {"a": _fill(A, "alpha", tmp_path), "b": _fill(B, "bsecret", tmp_path)}
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    root = auth.create_token(db, name="root", user="root")[0]  # the bootstrap admin
    for user, project, role in (
        ("ann", A, "ml-engineer"),
        ("alpha-admin", A, "admin"),
        ("bsecret-bob", B, "ml-engineer"),
    ):
        auth.create_user(db, user, actor="root")
        auth.add_member(db, project, user, role, actor="root")
    tokens = {
        "root": root,
        "ann-scoped": auth.create_token(db, name="ann-a", user="ann", project=A, actor="root")[0],
        "ann": auth.create_token(db, name="ann", user="ann", actor="root")[0],
        "alpha-admin": auth.create_token(db, name="pa", user="alpha-admin", actor="root")[0],
    }
    bob_secret, bob_token = auth.create_token(
        db, name="bsecret-tok", user="bsecret-bob", actor="root"
    )
    tokens["bob"] = bob_secret
    app = create_app()
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        as_bob = {"Authorization": f"Bearer {bob_secret}", "X-Loopstack-Project": B}
        b = objects["b"]
        logged = http.post(
            "/api/2.0/mlflow/logged-models",
            json={
                "experiment_id": b["exp_id"],
                "name": "bsecret-logged",
                "source_run_id": b["run_id"],
            },
            headers=as_bob,
        )
        assert logged.status_code == 200, logged.text
        b["model_id"] = logged.json()["model"]["info"]["model_id"]
        as_ann = {"Authorization": f"Bearer {tokens['ann-scoped']}"}
        alog = http.post(
            "/api/2.0/mlflow/logged-models",
            json={"experiment_id": objects["a"]["exp_id"], "name": "alpha-logged"},
            headers=as_ann,
        )
        assert alog.status_code == 200, alog.text
        objects["a"]["model_id"] = alog.json()["model"]["info"]["model_id"]
        # B's objects read by their own paths: raw paths must not reach /metrics labels
        for path in (f"/api/v1/runs/{b['run_id']}", f"/api/v1/models/{b['model']}"):
            assert http.get(path, headers=as_bob).status_code == 200
        b["token_id"] = bob_token.token_id
        yield {"http": http, "tokens": tokens, "objects": objects, "app": app, "db": db}


def _route_names(app: Any) -> dict[tuple[str, str], str]:
    """Each (method, path template) of the spec to its route's name."""
    names: dict[tuple[str, str], str] = {}
    for router in [*app.state.routers, app.router]:
        prefix = getattr(router, "prefix", "")
        for r in router.routes:
            if isinstance(r, APIRoute):
                full = r.path if r.path.startswith(prefix) else prefix + r.path
                for m in r.methods:
                    names[(m, re.sub(r"\{(\w+)(:path)?\}", r"{\1}", full))] = r.name
    return names


def _is_read(method: str, name: str) -> bool:
    return method == "GET" or (method == "POST" and minimum_role(name) == Role.VIEWER)


_MODEL_ROUTES = ("models_", "mlflow_registered_models_", "mlflow_model_versions_")


def _value(route: str, param: str, side: dict[str, Any]) -> str | None:
    """The value of ``param`` naming ``side``'s object, for route ``route``."""
    base = route.removesuffix("_ajax")
    if param == "name":
        if base.startswith(("experiments_",)):
            return str(side["exp_name"])
        if base.startswith(_MODEL_ROUTES) or base in ("model_versions_search", "approvals_list"):
            return str(side["model"])
        if base.startswith("deployments_"):
            return str(side["deployment"])
        if base.startswith("datasets_"):
            return str(side["dataset"])
        if base.startswith("features_entities"):
            return str(side["entity"])
        if base.startswith("features_views"):
            return str(side["view"])
        if base.startswith("features_services"):
            return str(side["service"])
        if base.startswith("loop_trigger"):
            return str(side["trigger"])
        return None
    if param == "filter":
        key = "exp_name" if base.startswith("mlflow_experiments") else "model"
        return f"name = '{side[key]}'"
    if param == "view" and base == "features_freshness":
        return str(side["view"])
    if param == "path" and base == "mlflow_artifacts_list":
        return f"{side['exp_id']}/{side['run_id']}/artifacts"
    simple = {
        "experiment_id": side["exp_id"],
        "experiment_name": side["exp_name"],
        "run_id": side["run_id"],
        "run_uuid": side["run_id"],
        "run_ids": side["run_id"],
        "key": side["metric"],
        "metric_key": side["metric"],
        "path": side["artifact"],
        "artifact_path": f"{side['exp_id']}/{side['run_id']}/artifacts/{side['artifact']}",
        "artifact_file_path": "MLmodel",
        "version": "1",
        "alias": side["alias"],
        "request_id": side["request_id"],
        "result_id": side["result_id"],
        "model_id": side["model_id"],
        "node": f"run:{side['run_id']}",
        "dataset": side["dataset"],
        "object_type": "run",
        "object_id": side["run_id"],
        "rollout_id": side["rollout_id"],
        "pipeline_run": side["pipeline_run"],
        "trigger": side["trigger"],
        "endpoint": side["deployment"],
    }
    got = simple.get(param)
    return None if got is None else str(got)


def _body(route: str, side: dict[str, Any] | None) -> dict[str, Any]:
    base = route.removesuffix("_ajax")
    if side is None:
        return {}
    return {
        "runs_search": {"experiment_ids": [side["exp_id"]]},
        "runs_metric_histories": {"run_ids": [side["run_id"]]},
        "mlflow_runs_search": {"experiment_ids": [side["exp_id"]]},
        "mlflow_logged_models_search": {"experiment_ids": [side["exp_id"]]},
        "mlflow_experiments_search": {"filter": f"name = '{side['exp_name']}'"},
        "mlflow_registered_models_latest_versions": {"name": side["model"]},
        "features_online_read": {
            "features": [f"{side['view']}:rate"],
            "entities": {side["join_key"]: [1]},
        },
    }.get(base, {})


def _request(
    op: dict[str, Any], path: str, route: str, side: dict[str, Any] | None
) -> tuple[str, dict[str, str]]:
    """The URL and query of ``op``, its parameters naming ``side``'s objects (``None``: no
    query at all and a made-up id in the path)."""
    query: dict[str, str] = {}
    for param in op.get("parameters", []):
        value = _value(route, param["name"], side) if side is not None else None
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", value or "nothing-here")
        elif param["in"] == "query" and value is not None:
            query[param["name"]] = value
    return path, query


def _secrets(b: dict[str, Any]) -> list[str]:
    """B's ids that do not carry the marker in their text."""
    return [
        str(b[k])
        for k in (
            "run_id",
            "request_id",
            "result_id",
            "model_id",
            "dataset_digest",
            "sha",
            "token_id",
        )
    ]


def _leaks(text: str, sent: str, status: int, b: dict[str, Any]) -> list[str]:
    """What of B ``text`` holds; an error may echo only what the request sent."""
    found = {m.group(0) for m in MARKER.finditer(text)} | {s for s in _secrets(b) if s in text}
    if status >= 400:
        found = {f for f in found if f not in sent}
    return sorted(found)


def _experiment_ids(payload: Any) -> set[str]:
    """Every value of an ``experiment_id`` field anywhere in a JSON payload."""
    out: set[str] = set()
    if isinstance(payload, dict):
        for k, v in payload.items():
            if k in ("experiment_id", "experimentId") and isinstance(v, (str, int)):
                out.add(str(v))
            out |= _experiment_ids(v)
    elif isinstance(payload, list):
        for v in payload:
            out |= _experiment_ids(v)
    return out


# Routes that list or search: asked about B's objects they answer an empty 200.
_LISTS = {
    "metrics",
    "whoami",
    "projects_list",
    "experiments_list",
    "audit_verify",
    "audit_events",
    "models_list",
    "model_versions_search",
    "approvals_list",
    "datasets_list",
    "deployments_list",
    "rollouts_list",
    "pipelines_runs",
    "pipelines_cost",
    "loop_triggers",
    "loop_status",
    "validations_list",
    "features_entities_list",
    "features_views_list",
    "features_services_list",
    "mlflow_server_info",
    "mlflow_experiments_search",
    "mlflow_experiments_search_get",
    "mlflow_registered_models_search",
    "mlflow_model_versions_search",
}
# Searches over experiments: B's experiment ids are either skipped (200) or unknown (404).
_SEARCHES = {"runs_search", "mlflow_runs_search", "mlflow_logged_models_search"}


def _expected(name: str, variant: str) -> set[int]:
    """The statuses a member of A may get: ``bare`` (no parameters), ``a`` (A's objects),
    ``b`` (B's objects), ``header-b`` (asking for project B)."""
    need = minimum_role(name)
    base = name.removesuffix("_ajax")
    if need is None:
        return {200}
    if need == GLOBAL_ADMIN:
        return {403}
    if variant == "header-b":
        return {404}
    if variant == "bare":  # missing or made-up parameters: any client error will do
        return {200, 400, 404, 422}
    if variant == "b":
        return {200} if base in _LISTS else {200, 404} if base in _SEARCHES else {404}
    # A's logged model has no artifacts; everything else of A is there
    return {200, 404} if base == "mlflow_logged_models_get_artifact" else {200}


def test_a_member_of_a_reads_nothing_of_b(world: dict[str, Any]) -> None:
    http, tokens, objects = world["http"], world["tokens"], world["objects"]
    a, b = objects["a"], objects["b"]
    root = {"Authorization": f"Bearer {tokens['root']}"}
    spec = http.get("/openapi.json", headers=root).json()
    names = _route_names(world["app"])
    operations = [
        (m.upper(), p, op)
        for p, ops in spec["paths"].items()
        for m, op in ops.items()
        if _is_read(m.upper(), names[(m.upper(), p)])
    ]
    assert len(operations) > 60
    callers = {
        "scoped token": {"Authorization": f"Bearer {tokens['ann-scoped']}"},
        "member of A only": {"Authorization": f"Bearer {tokens['ann']}", "X-Loopstack-Project": A},
    }
    problems: list[str] = []
    for caller, headers in callers.items():
        for method, template, op in operations:
            name = names[(method, template)]
            for variant, side, extra in (
                ("bare", None, {}),
                ("a", a, {}),
                ("b", b, {}),
                ("header-b", None, {"X-Loopstack-Project": B}),
            ):
                url, query = _request(op, template, name, side)
                body = _body(name, side) if method == "POST" else None
                sent_headers = {**headers, **extra}
                r = http.request(method, url, params=query, json=body, headers=sent_headers)
                where = f"{method} {url} {query or ''} {body or ''} as {caller} ({variant})"
                if r.status_code not in _expected(name, variant):
                    problems.append(f"{where}: status {r.status_code}: {r.text[:200]}")
                sent = json.dumps([url, query, body, sent_headers])
                leaks = _leaks(r.text, sent, r.status_code, b)
                if leaks:
                    problems.append(f"{where}: {r.status_code} shows {leaks}: {r.text[:300]}")
                is_json = r.headers.get("content-type", "").startswith("application/json")
                if is_json and b["exp_id"] in _experiment_ids(r.json()):
                    problems.append(f"{where}: shows B's experiment id: {r.text[:300]}")
    assert problems == [], "\n".join(problems)
    # /metrics labels requests by route template, never by a path holding a name or an id
    text = http.get("/metrics", headers=callers["scoped token"]).text
    labels = set(re.findall(r'route="([^"]*)"', text))
    templates = {re.sub(r"\{(\w+):path\}", r"{\1}", p) for p in labels}
    assert labels and templates <= {*spec["paths"], "/openapi.json", "unmatched"}, labels


def test_audit_reads_are_scoped_to_the_callers_projects_and_role(world: dict[str, Any]) -> None:
    http, tokens, db = world["http"], world["tokens"], world["db"]
    a_id = auth.get_project(db, A).project_id
    root = {"Authorization": f"Bearer {tokens['root']}"}
    scoped = {"Authorization": f"Bearer {tokens['ann-scoped']}"}
    member = {"Authorization": f"Bearer {tokens['ann']}", "X-Loopstack-Project": A}
    padmin = {"Authorization": f"Bearer {tokens['alpha-admin']}", "X-Loopstack-Project": A}
    everything = http.get("/api/v1/audit/events", headers=root).json()["events"]
    kinds = {e["object_type"] for e in everything}
    assert {"user", "token", "project", "run"} <= kinds
    for headers in (scoped, member):
        events = http.get("/api/v1/audit/events", headers=headers).json()["events"]
        assert events and all(e["project_id"] == a_id for e in events)
        assert not {e["object_type"] for e in events} & audit.ADMIN_OBJECT_TYPES
        verdict = http.get("/api/v1/audit/verify", headers=headers).json()
        assert verdict == {
            "ok": True,
            "checked": len(events),
            "broken_seq": None,
            "reason": None,
            "legacy": 0,
            "anchors": 0,
        }
    # A's admin sees A's membership changes too; nothing of users, tokens or other projects
    mine = http.get("/api/v1/audit/events", headers=padmin).json()["events"]
    assert {e["action"] for e in mine} >= {"project.create", "project.add_member"}
    assert all(e["project_id"] == a_id for e in mine)
    assert not {e["object_type"] for e in mine} & {"user", "token"}
    # the global admin verifies the whole chain
    whole = http.get("/api/v1/audit/verify", headers=root).json()
    assert whole["ok"] and whole["checked"] == len(everything) == audit.head_seq(db)


def test_a_break_in_another_project_is_reported_without_its_detail(
    world: dict[str, Any],
) -> None:
    from sqlalchemy import update

    from loopstack.store.metadata.schema import AuditEvent

    http, tokens, db = world["http"], world["tokens"], world["db"]
    b_id = auth.get_project(db, B).project_id
    a_id = auth.get_project(db, A).project_id
    b_first = min(e["seq"] for e in audit.events(db, project_id=b_id))
    with db.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == b_first).values(actor="mallory"))
    scoped = {"Authorization": f"Bearer {tokens['ann-scoped']}"}
    verdict = http.get("/api/v1/audit/verify", headers=scoped).json()
    assert verdict["ok"] is False and verdict["broken_seq"] is None
    assert "outside what you may read" in verdict["reason"]
    assert verdict["checked"] == len(
        [e for e in audit.events(db, project_id=a_id, include_admin=False) if e["seq"] < b_first]
    )
    root = {"Authorization": f"Bearer {tokens['root']}"}
    whole = http.get("/api/v1/audit/verify", headers=root).json()
    assert whole["ok"] is False and whole["broken_seq"] == b_first
    assert "edited" in whole["reason"]
