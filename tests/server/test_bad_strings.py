"""Strings no store can hold, and booleans sent as numbers, are refused at the server's edge
with a 4xx naming the field, identically over SQLite and PostgreSQL, and nothing is written.

Found by tests/server/test_fuzz_api.py: a NUL (U+0000) answered 500 on PostgreSQL, a lone
UTF-16 surrogate answered 500 on SQLite, and ``"start_time": false`` was stored as 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from loopstack.server import create_app
from tests.conftest import ThreadedServer

ML = "/api/2.0/mlflow"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def http(use_db: str) -> Iterator[httpx.Client]:
    """A client of a server over each metadata backend in turn."""
    with (
        ThreadedServer(create_app()) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def run_id(http: httpx.Client) -> str:
    exp = http.post(f"{ML}/experiments/create", json={"name": "edge"}).json()["experiment_id"]
    return http.post(f"{ML}/runs/create", json={"experiment_id": exp}).json()["run"]["info"][
        "run_id"
    ]


def _mlflow_refusal(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert field in body["message"]


def _native_refusal(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "Invalid"
    assert body["field"] == field
    assert field in body["message"]


NUL, SURROGATE = "\\u0000", "\\ud800"  # as JSON spells them


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_mlflow_bodies_refuse_bad_strings_naming_the_field(
    http: httpx.Client, run_id: str, bad: str
) -> None:
    cases = [
        ("experiments/create", f'{{"name": "bad{bad}name"}}', "name"),
        ("runs/set-tag", f'{{"run_id": "{run_id}", "key": "k", "value": "v{bad}"}}', "value"),
        ("runs/log-parameter", f'{{"run_id": "{run_id}", "key": "p{bad}", "value": "1"}}', "key"),
        (
            "runs/log-batch",
            f'{{"run_id": "{run_id}", "tags": [{{"key": "t", "value": "{bad}"}}]}}',
            "tags.0.value",
        ),
        ("runs/search", f'{{"experiment_ids": ["0"], "filter": "x{bad}"}}', "filter"),
    ]
    for route, body, field in cases:
        _mlflow_refusal(http.post(f"{ML}/{route}", content=body, headers=JSON), field)
    run = http.get(f"{ML}/runs/get", params={"run_id": run_id}).json()["run"]
    assert run["data"].get("tags", []) == [] or all(t["key"] != "k" for t in run["data"]["tags"])
    assert run["data"].get("params", []) == []
    names = [
        e["name"] for e in http.post(f"{ML}/experiments/search", json={}).json()["experiments"]
    ]
    assert names == ["edge", "Default"] or sorted(names) == ["Default", "edge"]


def test_mlflow_queries_and_paths_refuse_nul_and_non_utf8(http: httpx.Client) -> None:
    _mlflow_refusal(
        http.get(f"{ML}/experiments/get-by-name?experiment_name=a%00b"), "experiment_name"
    )
    _mlflow_refusal(
        http.get(f"{ML}/experiments/get-by-name?experiment_name=a%ffb"), "experiment_name"
    )
    _mlflow_refusal(http.get(f"{ML}/runs/get?run_id=%00"), "run_id")


def test_native_routes_refuse_bad_strings_with_loopstack_errors(http: httpx.Client) -> None:
    _native_refusal(
        http.post("/api/v1/experiments", content='{"name": "a\\u0000b"}', headers=JSON), "name"
    )
    _native_refusal(
        http.post(
            "/api/v1/experiments", content='{"name": "e", "tags": {"k": "\\udfff"}}', headers=JSON
        ),
        "tags.k",
    )
    _native_refusal(http.get("/api/v1/experiments/by-name/a%00b"), "path")
    _native_refusal(
        http.post("/api/v1/experiments", content=b'{"name": "\xff"}', headers=JSON), "body"
    )
    assert http.get("/api/v1/experiments/by-name/e").status_code == 404


def test_booleans_are_not_integers(http: httpx.Client, run_id: str) -> None:
    _mlflow_refusal(
        http.post(f"{ML}/runs/create", json={"experiment_id": "0", "start_time": False}),
        "start_time",
    )
    _mlflow_refusal(
        http.post(
            f"{ML}/runs/log-metric",
            json={"run_id": run_id, "key": "m", "value": 1.0, "timestamp": True},
        ),
        "timestamp",
    )
    _native_refusal(http.post("/api/v1/runs", json={"start_time": False}), "start_time")
    _native_refusal(http.post("/api/v1/runs", json={"start_time": -(2**100)}), "start_time")
    _native_refusal(
        http.post(
            f"/api/v1/runs/{run_id}/batch",
            json={"metrics": [{"key": "m", "value": 1.0, "step": True, "timestamp": 1}]},
        ),
        "metrics.0.step",
    )
    history = http.get(f"{ML}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"})
    assert history.json().get("metrics", []) == []
    # integers still pass
    ok = http.post(f"{ML}/runs/create", json={"experiment_id": "0", "start_time": 5})
    assert ok.status_code == 200
    assert ok.json()["run"]["info"]["start_time"] == 5


def test_online_features_of_the_wrong_shape_are_a_422(http: httpx.Client) -> None:
    # found by the fuzzer: a list of lists where references belong was a 500 (TypeError)
    body = {"features": [[-30152, 5.5e-205]], "entities": {"driver_id": [1]}}
    answer = http.post("/api/v1/features/online", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "features"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/features/views/x?version=99999999999999999999",
        "/api/2.0/mlflow/experiments/search?max_results=99999999999999999999",
        "/api/2.0/mlflow/metrics/get-history?metric_key=a&run_id=b&max_results=-99999999999999999999",
        "/api/2.0/mlflow/registered-models/search?max_results=99999999999999999999",
    ],
)
def test_integer_queries_outside_int64_are_a_4xx(http: httpx.Client, path: str) -> None:
    # found by the fuzzer: an OverflowError (native) and a ValidationError (MLflow) were 500s
    answer = http.get(path)
    assert 400 <= answer.status_code < 500, answer.text
    assert "9223372036854775807" in answer.text or "-9223372036854775808" in answer.text


@pytest.mark.parametrize("version", ["-9223372036854775808", "0", "2147483648"])
def test_feature_view_versions_outside_the_stored_range_are_a_422(
    http: httpx.Client, version: str
) -> None:
    # found by the fuzzer: on PostgreSQL an int64 against the 32-bit column was a 500
    answer = http.get(f"/api/v1/features/views/x?version={version}")
    assert answer.status_code == 422, answer.text
    assert "from 1 to 2147483647" in answer.text
