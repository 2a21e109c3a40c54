"""MLflow's REST API as raw HTTP: response shapes, error codes and statuses, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    assert body["message"]
    return body["message"]


def _run(http: httpx.Client, **body: Any) -> dict[str, Any]:
    resp = http.post(f"{API}/runs/create", json={"experiment_id": "0", **body})
    assert resp.status_code == 200, resp.text
    return resp.json()["run"]


def test_create_and_get_answer_the_fields_the_client_reads(http: httpx.Client) -> None:
    made = http.post(
        f"{API}/experiments/create", json={"name": "shapes", "tags": [{"key": "k", "value": "v"}]}
    )
    assert made.status_code == 200 and set(made.json()) == {"experiment_id"}
    eid = made.json()["experiment_id"]
    assert isinstance(eid, str)
    exp = http.get(f"{API}/experiments/get", params={"experiment_id": eid}).json()["experiment"]
    assert exp["name"] == "shapes" and exp["artifact_location"] == f"mlflow-artifacts:/{eid}"
    assert exp["lifecycle_stage"] == "active" and exp["tags"] == [{"key": "k", "value": "v"}]
    assert exp["creation_time"] == exp["last_update_time"] > 0
    by_name = http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "shapes"})
    assert by_name.json()["experiment"] == exp

    run = _run(
        http,
        experiment_id=eid,
        run_name="r",
        start_time=123,
        tags=[{"key": "mlflow.user", "value": "ana"}],
    )
    info = run["info"]
    assert info["run_id"] == info["run_uuid"] and len(info["run_id"]) == 32
    assert (info["run_name"], info["experiment_id"], info["status"]) == ("r", eid, "RUNNING")
    assert (info["start_time"], info["lifecycle_stage"]) == (123, "active")
    assert info["artifact_uri"] == f"mlflow-artifacts:/{eid}/{info['run_id']}/artifacts"
    assert info["user_id"] == "ana" and "end_time" not in info
    assert run["data"]["params"] == [] and run["data"]["metrics"] == []
    assert {"key": "mlflow.runName", "value": "r"} in run["data"]["tags"]
    assert run["inputs"] == {"dataset_inputs": []}
    rid = info["run_id"]

    ok = http.post(
        f"{API}/runs/log-metric",
        json={"run_id": rid, "key": "m", "value": 1.5, "timestamp": 7, "step": 2},
    )
    assert ok.status_code == 200 and ok.json() == {}
    http.post(f"{API}/runs/log-parameter", json={"run_uuid": rid, "key": "p", "value": "x"})
    http.post(f"{API}/runs/set-tag", json={"run_id": rid, "key": "t", "value": "y"})
    got = http.get(f"{API}/runs/get", params={"run_id": rid}).json()["run"]
    assert got["data"]["metrics"] == [{"key": "m", "value": 1.5, "timestamp": 7, "step": 2}]
    assert got["data"]["params"] == [{"key": "p", "value": "x"}]
    assert {"key": "t", "value": "y"} in got["data"]["tags"]

    done = http.post(
        f"{API}/runs/update", json={"run_id": rid, "status": "FINISHED", "end_time": 999}
    )
    assert done.json()["run_info"]["status"] == "FINISHED"
    assert done.json()["run_info"]["end_time"] == 999
    hist = http.get(f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "m"})
    assert hist.json() == {"metrics": [{"key": "m", "value": 1.5, "timestamp": 7, "step": 2}]}


def test_log_batch_and_inputs(http: httpx.Client) -> None:
    rid = _run(http)["info"]["run_id"]
    resp = http.post(
        f"{API}/runs/log-batch",
        json={
            "run_id": rid,
            "metrics": [
                {"key": "loss", "value": v, "timestamp": 100 + s, "step": s}
                for s, v in enumerate([0.5, 0.25, 0.125])
            ],
            "params": [{"key": "lr", "value": "0.1"}, {"key": "lr", "value": "0.1"}],
            "tags": [{"key": "team", "value": "risk"}],
        },
    )
    assert resp.status_code == 200 and resp.json() == {}
    dataset = {
        "name": "train",
        "digest": "abc123",
        "source_type": "local",
        "source": "/d",
        "schema": "{}",
        "profile": '{"rows": 3}',
    }
    inputs = http.post(
        f"{API}/runs/log-inputs",
        json={
            "run_id": rid,
            "datasets": [
                {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": dataset}
            ],
        },
    )
    assert inputs.status_code == 200
    run = http.get(f"{API}/runs/get", params={"run_uuid": rid}).json()["run"]
    assert run["data"]["metrics"] == [{"key": "loss", "value": 0.125, "timestamp": 102, "step": 2}]
    assert run["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert run["inputs"]["dataset_inputs"] == [
        {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": dataset}
    ]
    bulk = http.get(
        f"{API}/metrics/get-history-bulk-interval",
        params={"run_ids": [rid], "metric_key": "loss", "max_results": 2},
    )
    assert [(m["step"], m["run_id"]) for m in bulk.json()["metrics"]] == [(0, rid), (2, rid)]


def test_search_runs_and_experiments(http: httpx.Client) -> None:
    eid = http.post(f"{API}/experiments/create", json={"name": "s1"}).json()["experiment_id"]
    http.post(f"{API}/experiments/create", json={"name": "s2"})
    ids = []
    for v in (3.0, 1.0, 2.0):
        rid = _run(http, experiment_id=eid)["info"]["run_id"]
        http.post(
            f"{API}/runs/log-metric", json={"run_id": rid, "key": "m", "value": v, "timestamp": 1}
        )
        ids.append(rid)
    page = http.post(
        f"{API}/runs/search",
        json={
            "experiment_ids": [eid],
            "filter": "metrics.m >= 2",
            "order_by": ["metrics.m ASC"],
            "run_view_type": "ACTIVE_ONLY",
            "max_results": 1,
        },
    ).json()
    assert [r["info"]["run_id"] for r in page["runs"]] == [ids[2]] and page["next_page_token"]
    last = http.post(
        f"{API}/runs/search",
        json={
            "experiment_ids": [eid],
            "filter": "metrics.m >= 2",
            "order_by": ["metrics.m ASC"],
            "max_results": 1,
            "page_token": page["next_page_token"],
        },
    ).json()
    assert [r["info"]["run_id"] for r in last["runs"]] == [ids[0]]
    assert "next_page_token" not in last
    assert http.post(f"{API}/runs/search", json={"experiment_ids": ["12345"]}).json() == {
        "runs": []
    }

    posted = http.post(
        f"{API}/experiments/search",
        json={"filter": "name LIKE 's%'", "order_by": ["name DESC"], "max_results": 1},
    ).json()
    assert [e["name"] for e in posted["experiments"]] == ["s2"] and posted["next_page_token"]
    got = http.get(
        f"{API}/experiments/search",
        params={
            "filter": "name LIKE 's%'",
            "order_by": "name DESC",
            "max_results": 1,
            "page_token": posted["next_page_token"],
        },
    ).json()
    assert [e["name"] for e in got["experiments"]] == ["s1"] and "next_page_token" not in got
    every = http.get(f"{API}/experiments/search", params={"view_type": "ALL"}).json()
    assert {e["name"] for e in every["experiments"]} == {"Default", "s1", "s2"}


def test_unknown_ids_are_resource_does_not_exist(http: httpx.Client) -> None:
    ghost = "f" * 32
    _error(http.get(f"{API}/runs/get", params={"run_id": ghost}), 404, "RESOURCE_DOES_NOT_EXIST")
    for path, body in [
        ("runs/log-metric", {"key": "m", "value": 1, "timestamp": 1}),
        ("runs/log-parameter", {"key": "p", "value": "1"}),
        ("runs/set-tag", {"key": "t", "value": "1"}),
        ("runs/log-batch", {}),
        ("runs/update", {"status": "FINISHED"}),
        ("runs/delete", {}),
        ("runs/restore", {}),
    ]:
        _error(
            http.post(f"{API}/{path}", json={"run_id": ghost, **body}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        )
    _error(
        http.get(f"{API}/metrics/get-history", params={"run_id": ghost, "metric_key": "m"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _error(
        http.get(f"{API}/experiments/get", params={"experiment_id": "404"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _error(
        http.get(f"{API}/experiments/get", params={"experiment_id": "not-a-number"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _error(
        http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "ghost"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _error(
        http.post(f"{API}/runs/create", json={"experiment_id": "404"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    rid = _run(http)["info"]["run_id"]
    _error(
        http.post(f"{API}/runs/delete-tag", json={"run_id": rid, "key": "none"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_duplicate_experiment_is_resource_already_exists(http: httpx.Client) -> None:
    assert http.post(f"{API}/experiments/create", json={"name": "twice"}).status_code == 200
    message = _error(
        http.post(f"{API}/experiments/create", json={"name": "twice"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )
    assert "twice" in message
    other = http.post(f"{API}/experiments/create", json={"name": "other"}).json()
    _error(
        http.post(
            f"{API}/experiments/update",
            json={"experiment_id": other["experiment_id"], "new_name": "twice"},
        ),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )


def _post_raw(http: httpx.Client, path: str, body: dict[str, Any], raw: str) -> httpx.Response:
    """POST ``body`` as JSON with the token ``"@RAW@"`` replaced by ``raw`` unquoted."""
    text = json.dumps(body).replace('"@RAW@"', raw)
    return http.post(path, content=text, headers={"content-type": "application/json"})


# values that are not numbers at all
@pytest.mark.parametrize("raw", ['"abc"', "null", "true", "[1]", '{"v": 1}'])
def test_bad_metric_values_are_invalid_and_change_nothing(http: httpx.Client, raw: str) -> None:
    rid = _run(http)["info"]["run_id"]
    body = {"run_id": rid, "key": "loss", "value": "@RAW@", "timestamp": 1}
    message = _error(
        _post_raw(http, f"{API}/runs/log-metric", body, raw), 400, "INVALID_PARAMETER_VALUE"
    )
    assert "loss" in message
    batch = {
        "run_id": rid,
        "metrics": [{"key": "ok", "value": 1.0, "timestamp": 1}, body],
        "params": [{"key": "p", "value": "1"}],
    }
    _error(_post_raw(http, f"{API}/runs/log-batch", batch, raw), 400, "INVALID_PARAMETER_VALUE")
    data = http.get(f"{API}/runs/get", params={"run_id": rid}).json()["run"]["data"]
    assert data["metrics"] == [] and data["params"] == []


# protobuf's JSON strings for non-finite doubles (what the MLflow client sends), the bare
# tokens Python's json emits, and an overflowing literal: stored, rendered as MLflow does
@pytest.mark.parametrize(
    ("raw", "rendered"),
    [
        ('"NaN"', "NaN"),
        ('"Infinity"', "Infinity"),
        ('"-Infinity"', "-Infinity"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("1e400", "Infinity"),
    ],
)
def test_non_finite_metric_values_are_stored_and_rendered_as_protobuf_json(
    http: httpx.Client, raw: str, rendered: str
) -> None:
    rid = _run(http)["info"]["run_id"]
    body = {"run_id": rid, "key": "loss", "value": "@RAW@", "timestamp": 1}
    assert _post_raw(http, f"{API}/runs/log-metric", body, raw).status_code == 200
    batch = {"run_id": rid, "metrics": [{**body, "key": "b", "step": 1}]}
    assert _post_raw(http, f"{API}/runs/log-batch", batch, raw).status_code == 200
    data = http.get(f"{API}/runs/get", params={"run_id": rid}).json()["run"]["data"]
    assert {m["key"]: m["value"] for m in data["metrics"]} == {"loss": rendered, "b": rendered}
    hist = http.get(f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "b"})
    assert hist.json()["metrics"] == [{"key": "b", "value": rendered, "timestamp": 1, "step": 1}]


def test_finite_float_edge_values_are_kept_exactly(http: httpx.Client) -> None:
    rid = _run(http)["info"]["run_id"]
    values = [0.1, 1e-300, -2.5e-7, 1.7976931348623157e308, 123456789.123456789]
    for step, v in enumerate(values):
        http.post(
            f"{API}/runs/log-metric",
            json={"run_id": rid, "key": "x", "value": v, "timestamp": 1, "step": step},
        )
    hist = http.get(f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "x"})
    got = [m["value"] for m in hist.json()["metrics"]]
    assert got == values


@pytest.mark.parametrize(
    "path,body",
    [
        ("runs/log-parameter", {"key": "bad key!", "value": "1"}),
        ("runs/log-parameter", {"key": "../up", "value": "1"}),
        ("runs/set-tag", {"key": "", "value": "1"}),
        ("runs/log-metric", {"key": "a" * 251, "value": 1, "timestamp": 1}),
        ("runs/log-metric", {"key": "m", "value": 1}),  # timestamp is required
        ("runs/log-metric", {"key": "m", "value": 1, "timestamp": 1, "step": 2**63}),
        ("runs/log-metric", {"key": "m", "value": 1, "timestamp": "soon"}),
        ("runs/log-parameter", {"key": "p"}),
        ("runs/log-parameter", {"key": 5, "value": "1"}),
        ("runs/set-tag", {"key": "t"}),
        ("runs/update", {"status": "DONE"}),
        ("runs/update", {"status": 42}),
        ("runs/log-batch", {"params": [{"key": "p", "value": "1"}, {"key": "p", "value": "2"}]}),
        ("runs/log-batch", {"metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001}),
        ("runs/log-batch", {"params": "not a list"}),
        ("runs/log-inputs", {"datasets": [{"dataset": {"name": "d"}}]}),
        (
            "runs/log-inputs",
            {
                "datasets": [
                    {
                        "dataset": {
                            "name": "d",
                            "digest": "x" * 65,
                            "source_type": "local",
                            "source": "s",
                        }
                    }
                ]
            },
        ),
        ("runs/update", {"run_name": "n" * 251}),
    ],
)
def test_bad_input_is_invalid_parameter_value(
    http: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    rid = _run(http)["info"]["run_id"]
    _error(http.post(f"{API}/{path}", json={"run_id": rid, **body}), 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    "path,body",
    [
        ("runs/search", {"experiment_ids": ["0"], "filter": "metrics.m >>> 1"}),
        ("runs/search", {"experiment_ids": ["0"], "order_by": ["nonsense.x"]}),
        ("runs/search", {"experiment_ids": ["0"], "run_view_type": "SOME"}),
        ("runs/search", {"experiment_ids": ["0"], "max_results": 0}),
        ("runs/search", {"experiment_ids": ["0"], "page_token": "garbage"}),
        ("experiments/search", {"filter": "name = 1"}),
        ("experiments/search", {"filter": "owner = 'x'"}),
        ("experiments/search", {"order_by": ["size DESC"]}),
        ("experiments/search", {"max_results": 50_001}),
        ("experiments/create", {"name": ""}),
        ("experiments/create", {"tags": []}),
        ("experiments/create", {"name": "e" * 257}),
        ("runs/create", {"experiment_id": "0", "run_name": "n" * 251}),
        ("experiments/delete", {"experiment_id": "0"}),
        ("experiments/restore", {"experiment_id": "0"}),
    ],
)
def test_bad_searches_and_experiment_requests_are_400(
    http: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    _error(http.post(f"{API}/{path}", json=body), 400, "INVALID_PARAMETER_VALUE")


def test_malformed_requests_are_400_never_500(http: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    for path in ("runs/create", "runs/log-batch", "experiments/create", "runs/search"):
        _error(
            http.post(f"{API}/{path}", content=b"{not json", headers=headers),
            400,
            "INVALID_PARAMETER_VALUE",
        )
        _error(
            http.post(f"{API}/{path}", content=b"[1, 2]", headers=headers),
            400,
            "INVALID_PARAMETER_VALUE",
        )
    _error(
        http.post(f"{API}/experiments/create", content=b"", headers=headers),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _error(http.get(f"{API}/runs/get"), 400, "INVALID_PARAMETER_VALUE")
    _error(http.get(f"{API}/experiments/get"), 400, "INVALID_PARAMETER_VALUE")
    _error(
        http.get(f"{API}/metrics/get-history", params={"run_id": "x"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _error(
        http.get(
            f"{API}/metrics/get-history-bulk-interval",
            params={"run_ids": ["x"] * 101, "metric_key": "m"},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
    )


def test_finished_runs_take_metrics_params_and_tags_deleted_ones_refuse(
    http: httpx.Client,
) -> None:
    rid = _run(http)["info"]["run_id"]
    http.post(f"{API}/runs/update", json={"run_id": rid, "status": "KILLED"})
    metric = {"run_id": rid, "key": "m", "value": 1, "timestamp": 1}
    assert http.post(f"{API}/runs/log-metric", json=metric).status_code == 200
    param = {"run_id": rid, "key": "p", "value": "1"}
    assert http.post(f"{API}/runs/log-parameter", json=param).status_code == 200
    ok = http.post(f"{API}/runs/set-tag", json={"run_id": rid, "key": "t", "value": "v"})
    assert ok.status_code == 200
    again = http.post(f"{API}/runs/update", json={"run_id": rid, "status": "RUNNING"})
    assert again.json()["run_info"]["status"] == "RUNNING"
    assert "end_time" not in again.json()["run_info"]
    http.post(f"{API}/runs/delete", json={"run_id": rid})
    message = _error(
        http.post(f"{API}/runs/log-metric", json=metric), 400, "INVALID_PARAMETER_VALUE"
    )
    assert f"run '{rid}' is deleted" in message


def test_artifact_proxy_round_trip_matches_the_run(http: httpx.Client) -> None:
    run = _run(http)["info"]
    root = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
    put = http.put(f"{ARTIFACTS}/{root}/dir/a b.txt", content=b"hello")
    assert put.status_code == 200
    assert http.put(f"{ARTIFACTS}/{root}/empty.bin", content=b"").status_code == 200
    got = http.get(f"{ARTIFACTS}/{root}/dir/a b.txt")
    assert got.status_code == 200 and got.content == b"hello"
    listed = http.get(ARTIFACTS, params={"path": root}).json()
    assert listed == {
        "files": [
            {"path": "dir", "is_dir": True},
            {"path": "empty.bin", "is_dir": False, "file_size": 0},
        ]
    }
    assert http.get(ARTIFACTS, params={"path": f"{root}/dir/a b.txt"}).json() == {"files": []}
    # A path outside any experiment of the caller's project does not exist for them.
    assert http.get(ARTIFACTS, params={"path": "no/such/dir"}).status_code == 404
    via_run = http.get(f"{API}/artifacts/list", params={"run_id": run["run_id"], "path": "dir"})
    assert via_run.json() == {
        "root_uri": run["artifact_uri"],
        "files": [{"path": "dir/a b.txt", "is_dir": False, "file_size": 5}],
    }
    _error(http.get(f"{ARTIFACTS}/{root}/missing.txt"), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(http.get(f"{ARTIFACTS}/{root}/dir"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_artifact_proxy_refuses_traversal(http: httpx.Client, live_server: str) -> None:
    _error(http.get(ARTIFACTS, params={"path": "1/../../etc"}), 400, "INVALID_PARAMETER_VALUE")
    _error(http.get(ARTIFACTS, params={"path": "/etc"}), 400, "INVALID_PARAMETER_VALUE")
    # Through a real server: percent-encoded dots survive the client and reach the route.
    with httpx.Client(base_url=live_server) as real:
        for path in (
            "0/x/%2E%2E/%2E%2E/%2E%2E/escape.txt",
            "0/..%2F..%2Fescape.txt",
            "0/x/%2E%2E%5C%2E%2E%5Cescape.txt",
        ):
            _error(real.put(f"{ARTIFACTS}/{path}", content=b"x"), 400, "INVALID_PARAMETER_VALUE")
            _error(real.get(f"{ARTIFACTS}/{path}"), 400, "INVALID_PARAMETER_VALUE")
        _error(real.get(ARTIFACTS, params={"path": "../x"}), 400, "INVALID_PARAMETER_VALUE")
        _error(real.get(ARTIFACTS, params={"path": ""}), 400, "INVALID_PARAMETER_VALUE")


def test_server_info_says_no_multipart(http: httpx.Client) -> None:
    info = http.get("/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is False
    assert info["multipart_downloads_enabled"] is False
