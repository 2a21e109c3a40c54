"""A model version's recorded gates through a real server:
``GET /api/v1/models/{name}/versions/{version}/gates``, ``ls.loop.gate_report`` /
``gate_results`` / ``require_gates_passed`` with an http tracking URI, and `loopstack
models gates` through the server giving what it gives locally; a viewer reads, another
project's user sees nothing, an unknown model or version is a 404 naming it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from loopstack.cli import app
from loopstack.errors import GateFailed, NotFound
from loopstack.loop import gate_report, gate_results, recorded_gates, require_gates_passed
from tests.conftest import ThreadedServer
from tests.loop.rollout_models import Models, gated_versions


def cli(*args: str) -> tuple[int, str, str]:
    got = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    assert got.exception is None or isinstance(got.exception, SystemExit), got.exception
    return got.exit_code, got.stdout, got.stderr


@pytest.fixture
def models(use_db: str) -> Models:
    """iris v1 (production, no gates), v2 (gates passed), v3 (one gate of three failed)."""
    return gated_versions()


@pytest.fixture
def server(models: Models) -> Iterator[str]:
    from loopstack.server import create_app
    from loopstack.store.remote import close_shared

    with ThreadedServer(create_app()) as s:
        yield s.url
        close_shared(s.url)


def test_the_route_answers_the_recorded_gates_and_404s(models: Models, server: str) -> None:
    with httpx.Client(base_url=f"{server}/api/v1", timeout=30) as http:
        answer = http.get("/models/iris/versions/3/gates")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        local = gate_report("iris", 3, stores=models.stores)
        assert local is not None and body == recorded_gates("iris", 3, local)
        assert body["recorded"] is True and body["passed"] is False
        assert body["recorded_by"] == "alice" and isinstance(body["evaluated_at"], int)
        assert [(r["gate"], r["passed"]) for r in body["results"]] == [
            ("primary:accuracy", True),
            ("guardrail:accuracy", False),
            ("fairness:accuracy by size", True),
        ]
        assert body["results"][0]["evidence"]["bootstrap"]["p_value"] <= 0.05
        assert body["failed_reasons"] == [f"guardrail:accuracy: {local.failed[0].reason}"]
        assert http.get("/models/iris/versions/2/gates").json()["passed"] is True
        ungated = http.get("/models/iris/versions/1/gates").json()
        assert ungated == recorded_gates("iris", 1, None) and ungated["recorded"] is False
        for path, named in (
            ("/models/iris/versions/9/gates", "no version 9"),
            ("/models/ghost/versions/1/gates", "'ghost'"),
        ):
            answer = http.get(path)
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"] == "NotFound" and named in answer.json()["message"]
        answer = http.get("/models/iris/versions/two/gates")
        assert answer.status_code == 422 and "two" in answer.json()["message"]


def _views() -> list[tuple[int, str, str]]:
    """`models gates` of each version, as a table and as JSON."""
    return [cli("models", "gates", "iris", v, *more) for v in "123" for more in ((), ("--json",))]


def test_the_python_verbs_and_the_cli_through_the_server(
    models: Models, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = gate_report("iris", 3)
    shown = _views()
    assert all(code == 0 for code, _, _ in shown), shown
    missing = cli("models", "gates", "iris", "9")

    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server)
    monkeypatch.delenv("LOOPSTACK_DB_URL")
    assert gate_report("iris", 3) == local
    assert local is not None and gate_results("iris", 3) == local.results
    assert gate_report("iris", 1) is None and gate_results("iris", 1) == []
    assert require_gates_passed("iris", 2).passed
    with pytest.raises(GateFailed, match=r"guardrail:accuracy: 0\.\d+ < min 0\.995"):
        require_gates_passed("iris", 3)
    with pytest.raises(GateFailed, match="version 1 has no gate results"):
        require_gates_passed("iris", 1)
    with pytest.raises(NotFound, match="no version 9"):
        gate_report("iris", 9)
    # the CLI through the server prints what it printed locally
    assert _views() == shown
    assert cli("models", "gates", "iris", "9") == missing
    assert missing[0] == 1 and missing[2].strip() == "error: model 'iris' has no version 9"


def test_a_viewer_reads_another_projects_user_sees_nothing(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopstack import auth
    from loopstack.server import create_app
    from loopstack.store.remote import close_shared

    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = models.stores.db
    auth.create_token(db, name="root", user="root")  # the first token: a global admin
    auth.create_project(db, "other", actor="root")
    tokens = {}
    for user, project in (("vic", "default"), ("oscar", "other")):
        auth.create_user(db, user, actor="root")
        auth.add_member(db, project, user, "viewer", actor="root")
        tokens[user] = auth.create_token(db, name=user, user=user, actor="root")[0]
    with ThreadedServer(create_app()) as s:

        def get(user: str | None, project: str = "default") -> httpx.Response:
            headers = {"X-Loopstack-Project": project}
            if user is not None:
                headers["Authorization"] = f"Bearer {tokens[user]}"
            return httpx.get(f"{s.url}/api/v1/models/iris/versions/3/gates", headers=headers)

        answer = get("vic")
        assert answer.status_code == 200 and answer.json()["recorded_by"] == "alice"
        assert get(None).status_code == 401
        assert get("oscar").status_code == 404  # not a member of 'default'
        answer = get("oscar", "other")  # its own project has no model 'iris'
        assert answer.status_code == 404 and "'iris'" in answer.json()["message"]
        # the CLI with the viewer's token
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", s.url)
        monkeypatch.setenv("LOOPSTACK_TOKEN", tokens["vic"])
        code, out, err = cli("models", "gates", "iris", "3")
        assert code == 0, err
        assert "1 of 3 gates failed: guardrail:accuracy" in out and " by alice" in out
        close_shared(s.url)
