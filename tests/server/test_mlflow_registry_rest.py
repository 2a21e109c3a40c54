"""MLflow's model registry REST API as raw HTTP: shapes, error codes and statuses, never a 5xx."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

API = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
VERSION_FIELDS = {
    "name",
    "version",
    "creation_timestamp",
    "last_updated_timestamp",
    "user_id",
    "current_stage",
    "description",
    "source",
    "run_id",
    "status",
    "tags",
    "run_link",
    "aliases",
}
MODEL_FIELDS = {
    "name",
    "creation_timestamp",
    "last_updated_timestamp",
    "user_id",
    "description",
    "latest_versions",
    "tags",
    "aliases",
}


def _ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return resp.json()


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    assert body["message"]
    return body["message"]


def _run_with_model(http: httpx.Client) -> tuple[str, str, dict[str, str]]:
    run = _ok(http.post(f"{API}/runs/create", json={"experiment_id": "0"}))["run"]["info"]
    root = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
    files = {"model/model.pkl": b"\x00\x01weights", "model/conf/params.json": b"{}"}
    for path, data in files.items():
        _ok(http.put(f"{ARTIFACTS}/{root}/{path}", content=data))
    digests = {p.removeprefix("model/"): hashlib.sha256(d).hexdigest() for p, d in files.items()}
    return run["run_id"], root, digests


def _model(http: httpx.Client, name: str = "churn") -> dict[str, Any]:
    return _ok(http.post(f"{API}/registered-models/create", json={"name": name}))


def _version(http: httpx.Client, run_id: str, name: str = "churn") -> dict[str, Any]:
    body = {"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id}
    return _ok(http.post(f"{API}/model-versions/create", json=body))["model_version"]


def test_shapes_of_models_and_versions(http: httpx.Client) -> None:
    run_id, root, digests = _run_with_model(http)
    made = _ok(
        http.post(
            f"{API}/registered-models/create",
            json={"name": "churn", "description": "d", "tags": [{"key": "team", "value": "risk"}]},
        )
    )
    model = made["registered_model"]
    assert set(model) == MODEL_FIELDS and model["latest_versions"] == []
    assert model["tags"] == [{"key": "team", "value": "risk"}] and model["user_id"] == "local"

    body = {
        "name": "churn",
        "source": f"mlflow-artifacts:/{root}/model",
        "run_id": run_id,
        "tags": [{"key": "k", "value": "v"}],
        "description": "first",
    }
    v = _ok(http.post(f"{API}/model-versions/create", json=body))["model_version"]
    assert set(v) == VERSION_FIELDS
    assert (v["version"], v["status"], v["current_stage"], v["run_id"]) == (
        "1",
        "READY",
        "None",
        run_id,
    )
    assert v["source"] == f"mlflow-artifacts:/{root}/model" and v["aliases"] == []
    assert v["tags"] == [{"key": "k", "value": "v"}] and v["description"] == "first"

    _ok(
        http.post(
            f"{API}/registered-models/alias",
            json={"name": "churn", "alias": "champion", "version": "1"},
        )
    )
    got = _ok(http.get(f"{API}/registered-models/get", params={"name": "churn"}))
    assert got["registered_model"]["aliases"] == [{"alias": "champion", "version": "1"}]
    assert [x["version"] for x in got["registered_model"]["latest_versions"]] == ["1"]
    by_alias = _ok(
        http.get(f"{API}/registered-models/alias", params={"name": "churn", "alias": "champion"})
    )["model_version"]
    assert by_alias["version"] == "1" and by_alias["aliases"] == ["champion"]
    uri = _ok(
        http.get(f"{API}/model-versions/get-download-uri", params={"name": "churn", "version": "1"})
    )
    assert uri == {"artifact_uri": f"mlflow-artifacts:/{root}/model"}
    latest = _ok(
        http.post(
            f"{API}/registered-models/get-latest-versions",
            json={"name": "churn", "stages": ["None"]},
        )
    )
    assert [x["version"] for x in latest["model_versions"]] == ["1"]
    assert _ok(
        http.get(
            f"{API}/registered-models/get-latest-versions",
            params={"name": "churn", "stages": ["Production"]},
        )
    ) == {"model_versions": []}
    # the UI's prefix answers the same
    assert _ok(http.get(f"{AJAX}/registered-models/get", params={"name": "churn"})) == got

    from loopstack.registry import registry

    assert registry().get_model_version("churn", 1).files == digests


def test_search_filters_orders_and_pages(http: httpx.Client) -> None:
    run_id, _, _ = _run_with_model(http)
    for name in ("beta", "alpha", "gamma"):
        _model(http, name)
    for _ in range(3):
        _version(http, run_id, "alpha")
    _version(http, run_id, "beta")
    _ok(
        http.post(
            f"{API}/registered-models/set-tag",
            json={"name": "beta", "key": "team", "value": "risk's"},
        )
    )

    def models(**params: Any) -> dict[str, Any]:
        return _ok(http.get(f"{API}/registered-models/search", params=params))

    assert [m["name"] for m in models()["registered_models"]] == ["alpha", "beta", "gamma"]
    assert [m["name"] for m in models(filter="name ILIKE 'A%'")["registered_models"]] == ["alpha"]
    assert models(filter="name LIKE 'A%'") == {"registered_models": []}
    assert [m["name"] for m in models(filter="tags.team = 'risk''s'")["registered_models"]] == [
        "beta"
    ]
    first = models(max_results=2, order_by=["name DESC"])
    assert [m["name"] for m in first["registered_models"]] == ["gamma", "beta"]
    rest = models(max_results=2, order_by=["name DESC"], page_token=first["next_page_token"])
    assert [m["name"] for m in rest["registered_models"]] == ["alpha"]
    assert "next_page_token" not in rest

    def versions(**params: Any) -> list[tuple[str, str]]:
        found = _ok(http.get(f"{API}/model-versions/search", params=params))["model_versions"]
        return [(v["name"], v["version"]) for v in found]

    assert versions(filter="name = 'alpha'") == [("alpha", "3"), ("alpha", "2"), ("alpha", "1")]
    assert versions(
        filter="name='alpha' AND version_number >= 2", order_by=["version_number ASC"]
    ) == [("alpha", "2"), ("alpha", "3")]
    assert versions(filter=f"run_id IN ('{run_id}', 'other') AND name != 'alpha'") == [
        ("beta", "1")
    ]
    assert versions(filter="source_path LIKE '%/model'", order_by=["name", "version_number"]) == [
        ("alpha", "1"),
        ("alpha", "2"),
        ("alpha", "3"),
        ("beta", "1"),
    ]
    assert versions(filter="run_id = 'nope'") == []


def test_updates_renames_tags_and_deletes(http: httpx.Client) -> None:
    run_id, _, _ = _run_with_model(http)
    _model(http, "churn")
    _version(http, run_id)
    upd = _ok(
        http.patch(f"{API}/registered-models/update", json={"name": "churn", "description": "new"})
    )
    assert upd["registered_model"]["description"] == "new"
    mv = _ok(
        http.patch(
            f"{API}/model-versions/update",
            json={"name": "churn", "version": 1, "description": "v1"},
        )
    )
    assert mv["model_version"]["description"] == "v1"
    _ok(
        http.post(
            f"{API}/model-versions/set-tag",
            json={"name": "churn", "version": "1", "key": "a", "value": "b"},
        )
    )
    # DELETE takes the JSON body the client sends, or query parameters
    _ok(
        http.request(
            "DELETE",
            f"{API}/model-versions/delete-tag",
            json={"name": "churn", "version": "1", "key": "a"},
        )
    )
    _ok(
        http.delete(
            f"{API}/model-versions/delete-tag",
            params={"name": "churn", "version": "1", "key": "never-set"},
        )
    )
    _ok(
        http.delete(
            f"{API}/registered-models/delete-tag", params={"name": "churn", "key": "never-set"}
        )
    )
    _ok(http.delete(f"{API}/registered-models/alias", params={"name": "churn", "alias": "x"}))
    renamed = _ok(
        http.post(f"{API}/registered-models/rename", json={"name": "churn", "new_name": "churn2"})
    )
    assert renamed["registered_model"]["name"] == "churn2"
    assert [v["name"] for v in renamed["registered_model"]["latest_versions"]] == ["churn2"]
    _ok(http.request("DELETE", f"{API}/registered-models/delete", json={"name": "churn2"}))
    _error(
        http.get(f"{API}/registered-models/get", params={"name": "churn2"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_errors_name_the_problem_with_mlflows_codes(http: httpx.Client) -> None:
    run_id, root, _ = _run_with_model(http)
    other = _ok(http.post(f"{API}/runs/create", json={"experiment_id": "0"}))["run"]["info"]
    _model(http, "churn")
    _version(http, run_id)

    msg = _error(
        http.get(f"{API}/registered-models/get", params={"name": "nope"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert "nope" in msg
    msg = _error(
        http.post(f"{API}/registered-models/create", json={"name": "churn"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )
    assert "churn" in msg
    msg = _error(
        http.get(f"{API}/model-versions/get", params={"name": "churn", "version": "abc"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "'abc'" in msg
    _error(
        http.get(f"{API}/model-versions/get", params={"name": "churn", "version": "9"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _error(
        http.post(f"{API}/registered-models/rename", json={"name": "churn", "new_name": "../x"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _model(http, "taken")
    _error(
        http.post(f"{API}/registered-models/rename", json={"name": "churn", "new_name": "taken"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )

    def create(**body: Any) -> httpx.Response:
        return http.post(f"{API}/model-versions/create", json={"name": "churn", **body})

    _error(
        create(source=f"runs:/{run_id}/model", run_id=other["run_id"]),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    msg = _error(
        create(source=f"mlflow-artifacts:/{root}/model", run_id=other["run_id"]),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "not inside the artifacts" in msg
    assert "local path" in _error(create(source="/tmp/model"), 400, "INVALID_PARAMETER_VALUE")
    _error(create(source="file:///tmp/model"), 400, "INVALID_PARAMETER_VALUE")
    _error(create(source=f"mlflow-artifacts:/{root}/../../x"), 400, "INVALID_PARAMETER_VALUE")
    assert "logged model" in _error(
        create(source="models:/m-0123456789abcdef"), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    _error(create(source="models:/churn/Production"), 400, "INVALID_PARAMETER_VALUE")
    _error(create(source="models:/churn/7"), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(create(source="runs:/no-such-run/model"), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(
        http.post(
            f"{API}/model-versions/create",
            json={"name": "unmade", "source": f"runs:/{run_id}/model"},
        ),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )

    def alias(**body: Any) -> httpx.Response:
        return http.post(f"{API}/registered-models/alias", json={"name": "churn", **body})

    _error(alias(alias="latest", version="1"), 400, "INVALID_PARAMETER_VALUE")
    _error(alias(alias="v3", version="1"), 400, "INVALID_PARAMETER_VALUE")
    _error(alias(alias="staging", version="abc"), 400, "INVALID_PARAMETER_VALUE")
    _error(alias(alias="staging", version="42"), 404, "RESOURCE_DOES_NOT_EXIST")
    msg = _error(alias(alias="production", version="1"), 403, "PERMISSION_DENIED")
    assert "approved request" in msg and "ml-engineer" in msg

    for params in (
        {"filter": "name = "},
        {"filter": "flavor = 'x'"},
        {"filter": "name > 'a'"},
        {"filter": "name = 'a' OR name = 'b'"},
        {"order_by": "size DESC"},
        {"max_results": "0"},
        {"max_results": "1001"},
        {"max_results": "many"},
        {"page_token": "not-a-token"},
    ):
        _error(
            http.get(f"{API}/registered-models/search", params=params),
            400,
            "INVALID_PARAMETER_VALUE",
        )
    for params in (
        {"filter": "version_number = 'one'"},
        {"filter": "run_id IN 'a'"},
        {"filter": "run_id LIKE 'a%'"},
        {"order_by": "alias"},
    ):
        _error(
            http.get(f"{API}/model-versions/search", params=params), 400, "INVALID_PARAMETER_VALUE"
        )
    assert "keeps every registered version" in _error(
        http.request(
            "DELETE", f"{API}/model-versions/delete", json={"name": "churn", "version": "1"}
        ),
        400,
        "INVALID_STATE",
    )
    _error(
        http.post(
            f"{API}/model-versions/transition-stage",
            json={"name": "churn", "version": "1", "stage": "Production"},
        ),
        400,
        "INVALID_STATE",
    )


@pytest.mark.parametrize(
    "method,path,payload",
    [
        ("POST", "/registered-models/create", {}),
        ("POST", "/registered-models/create", {"name": 5}),
        ("POST", "/registered-models/create", {"name": "x", "tags": "t"}),
        ("POST", "/registered-models/create", {"name": "x", "tags": [{"key": "a"}]}),
        ("POST", "/registered-models/create", {"name": "x" * 300}),
        ("POST", "/registered-models/create", {"name": ""}),
        ("POST", "/registered-models/set-tag", {"name": "churn", "key": "k"}),
        ("POST", "/registered-models/set-tag", {"name": "churn", "key": "", "value": "v"}),
        ("POST", "/registered-models/alias", {"name": "churn", "alias": "s"}),
        ("POST", "/registered-models/alias", {"name": "churn", "alias": "s", "version": [1]}),
        ("POST", "/registered-models/alias", {"name": "churn", "alias": "9x", "version": "1"}),
        ("POST", "/model-versions/create", {"name": "churn"}),
        ("POST", "/model-versions/create", {"name": "churn", "source": ""}),
        ("POST", "/model-versions/create", {"name": "churn", "source": "runs:/"}),
        ("POST", "/model-versions/create", {"name": "churn", "source": "runs://host/r/m"}),
        ("POST", "/model-versions/create", {"name": "churn", "source": "models:/"}),
        ("POST", "/model-versions/create", {"name": "churn", "source": "models:/a/b/c"}),
        ("POST", "/model-versions/create", {"name": "churn", "source": "mlflow-artifacts:/"}),
        ("POST", "/model-versions/create", {"name": "churn", "source": "C:\\models\\m"}),
        (
            "POST",
            "/model-versions/set-tag",
            {"name": "churn", "version": "1.5", "key": "k", "value": "v"},
        ),
        (
            "POST",
            "/model-versions/set-tag",
            {"name": "churn", "version": "1", "key": "k" * 1000, "value": "v"},
        ),
        ("PATCH", "/model-versions/update", {"name": "churn", "version": None}),
        ("PATCH", "/registered-models/update", {"description": "d"}),
        ("POST", "/registered-models/get-latest-versions", {"name": "churn", "stages": ["Gold"]}),
        ("DELETE", "/registered-models/delete", {}),
        ("DELETE", "/model-versions/delete-tag", {"name": "churn", "version": "x", "key": "k"}),
        ("DELETE", "/registered-models/alias", {"name": "churn"}),
    ],
)
def test_bad_input_is_a_400_never_a_5xx(
    http: httpx.Client, method: str, path: str, payload: dict[str, Any]
) -> None:
    _model(http, "churn")
    run = _ok(http.post(f"{API}/runs/create", json={"experiment_id": "0"}))["run"]["info"]
    _ok(
        http.post(
            f"{API}/model-versions/create",
            json={"name": "churn", "source": f"runs:/{run['run_id']}/m"},
        )
    )
    resp = http.request(method, API + path, json=payload)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["error_code"] in {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"}


def test_a_delete_with_a_broken_body_is_a_400(http: httpx.Client) -> None:
    resp = http.request(
        "DELETE",
        f"{API}/registered-models/delete",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    _error(resp, 400, "INVALID_PARAMETER_VALUE")
