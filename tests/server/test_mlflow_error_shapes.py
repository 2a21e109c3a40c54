"""Where an MLflow server and a bare FastAPI app answer differently, loopstack answers as MLflow.

Unknown endpoints, wrong methods, unreadable bodies, unparseable ``order_by`` clauses;
NaN and infinite metrics as protobuf's JSON writes them; logging to a finished run.
The native API keeps loopstack's own error shape for the same mistakes.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

API = "/api/2.0/mlflow"


def _mlflow_error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


def _native_error(resp: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error and body["message"] and "detail" not in body, body
    return dict(body)


@pytest.mark.parametrize(
    "path",
    [
        f"{API}/no/such/endpoint",
        "/ajax-api/2.0/mlflow/runs/nope",
        "/api/2.0/mlflow-artifacts/nope",
        "/api/3.0/mlflow/nope",
    ],
)
def test_an_unknown_mlflow_endpoint_is_endpoint_not_found(http: httpx.Client, path: str) -> None:
    message = _mlflow_error(http.post(path, json={}), 404, "ENDPOINT_NOT_FOUND")
    assert path in message


def test_an_unknown_native_endpoint_answers_loopstacks_error(http: httpx.Client) -> None:
    body = _native_error(http.get("/api/v1/no/such"), 404, "NotFound")
    assert "/api/v1/no/such" in body["message"]


def test_a_wrong_method_is_405_with_every_method_of_the_path(http: httpx.Client) -> None:
    resp = http.put(f"{API}/experiments/search")  # served as GET and as POST
    message = _mlflow_error(resp, 405, "ENDPOINT_NOT_FOUND")
    assert resp.headers["allow"] == "GET, POST" and "PUT" in message
    one = http.get(f"{API}/runs/create")
    assert one.status_code == 405 and one.headers["allow"] == "POST"
    native = http.put("/api/v1/experiments")
    _native_error(native, 405, "MethodNotAllowed")
    assert native.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"experiment_id": "\xff\xfe"}', "application/json"),  # invalid UTF-8
        (b"experiment_id=0", "text/plain"),
        (b"experiment_id=0", "application/x-www-form-urlencoded"),
        (b"[1, 2]", "application/json"),
        (b'"just a string"', "application/json"),
        (b'{"experiment_id": ["0"]}', "application/json"),  # a list for a string
        (b'{"start_time": "soon"}', "application/json"),
        (b'{"tags": "k=v"}', "application/json"),  # a string for a list or object
    ],
)
def test_unreadable_or_mistyped_bodies_are_invalid_parameter_value(
    http: httpx.Client, content: bytes, content_type: str
) -> None:
    resp = http.post(f"{API}/runs/create", content=content, headers={"content-type": content_type})
    _mlflow_error(resp, 400, "INVALID_PARAMETER_VALUE")
    native = http.post("/api/v1/runs", content=content, headers={"content-type": content_type})
    assert native.status_code == 422, native.text
    assert native.json()["error"] == "Invalid" and "detail" not in native.json()


def _run(http: httpx.Client) -> str:
    resp = http.post(f"{API}/runs/create", json={"experiment_id": "0"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["run"]["info"]["run_id"])


def test_nan_and_infinities_round_trip_as_protobuf_json_on_both_apis(http: httpx.Client) -> None:
    rid = _run(http)
    for step, (key, value) in enumerate([("a", "NaN"), ("b", "Infinity"), ("c", "-Infinity")]):
        point = {"run_id": rid, "key": key, "value": value, "timestamp": 5, "step": step}
        assert http.post(f"{API}/runs/log-metric", json=point).status_code == 200
    data = http.get(f"{API}/runs/get", params={"run_id": rid}).json()["run"]["data"]
    assert {m["key"]: m["value"] for m in data["metrics"]} == {
        "a": "NaN",
        "b": "Infinity",
        "c": "-Infinity",
    }
    native = http.get(f"/api/v1/runs/{rid}").json()
    assert native["metrics"] == {"a": "NaN", "b": "Infinity", "c": "-Infinity"}
    history = http.get(f"/api/v1/runs/{rid}/metrics/a").json()["metrics"]
    assert history == [{"key": "a", "value": "NaN", "step": 0, "timestamp": 5}]
    found = http.post(
        f"{API}/runs/search", json={"experiment_ids": ["0"], "order_by": ["metrics.a DESC"]}
    )
    assert found.status_code == 200 and found.json()["runs"][0]["info"]["run_id"] == rid


def test_logging_to_a_deleted_run_is_refused_saying_so(http: httpx.Client) -> None:
    rid = _run(http)
    assert http.post(f"{API}/runs/delete", json={"run_id": rid}).status_code == 200
    point = {"run_id": rid, "key": "m", "value": 1, "timestamp": 1}
    message = _mlflow_error(
        http.post(f"{API}/runs/log-metric", json=point), 400, "INVALID_PARAMETER_VALUE"
    )
    assert "is deleted" in message
    native = http.post(f"/api/v1/runs/{rid}/batch", json={"params": {"p": "1"}})
    assert _native_error(native, 409, "Conflict")["message"].count("is deleted") == 1


def test_changing_a_param_names_the_key_and_both_values(http: httpx.Client) -> None:
    rid = _run(http)
    param = {"run_id": rid, "key": "lr", "value": "0.1"}
    assert http.post(f"{API}/runs/log-parameter", json=param).status_code == 200
    assert http.post(f"{API}/runs/log-parameter", json=param).status_code == 200  # a no-op
    message = _mlflow_error(
        http.post(f"{API}/runs/log-parameter", json={**param, "value": "0.2"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "key='lr'" in message and "value='0.1'" in message and "'0.2'" in message


_BAD_ORDER = ["metrics.loss SIDEWAYS", "name ASC DESC", "", "DESC"]


@pytest.mark.parametrize("clause", _BAD_ORDER)
def test_an_unparseable_order_by_is_refused_on_every_search(
    http: httpx.Client, clause: str
) -> None:
    searches = [
        http.post(f"{API}/runs/search", json={"experiment_ids": ["0"], "order_by": [clause]}),
        http.post(f"{API}/experiments/search", json={"order_by": [clause]}),
        http.get(f"{API}/experiments/search", params={"order_by": clause}),
        http.get(f"{API}/registered-models/search", params={"order_by": clause}),
        http.get(f"{API}/model-versions/search", params={"order_by": clause}),
    ]
    for resp in searches:
        message = _mlflow_error(resp, 400, "INVALID_PARAMETER_VALUE")
        assert repr(clause) in message and "<key> [ASC|DESC]" in message, message
    native = http.post("/api/v1/runs/search", json={"experiment_ids": ["0"], "order_by": [clause]})
    assert "<key> [ASC|DESC]" in _native_error(native, 422, "Invalid")["message"]


# -- the real MLflow client ------------------------------------------------------------
@pytest.mark.mlflow
@pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*")
def test_the_mlflow_client_logs_nan_and_reads_it_back(mlflow_uri: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5, step=0)
        mlflow.log_metric("loss", float("nan"), step=1)  # the loss diverged
        mlflow.log_metric("grad_norm", float("inf"))
        mlflow.log_metric("margin", float("-inf"))
    client = MlflowClient()
    got = client.get_run(run.info.run_id).data.metrics
    assert math.isnan(got["loss"])
    assert got["grad_norm"] == math.inf and got["margin"] == -math.inf
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1]
    assert history[0].value == 0.5 and math.isnan(history[1].value)
    frame = mlflow.search_runs(order_by=["metrics.loss ASC"])
    assert math.isnan(frame["metrics.loss"].iloc[0])


@pytest.mark.mlflow
@pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*")
def test_the_mlflow_client_logs_to_a_finished_run(mlflow_uri: str) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    rid = client.create_run("0").info.run_id
    client.log_param(rid, "lr", "0.1")
    client.set_terminated(rid, "FINISHED")
    client.log_metric(rid, "test_auc", 0.93)  # evaluation after training ended
    client.log_param(rid, "evaluated_on", "holdout")
    client.log_param(rid, "lr", "0.1")  # the same value again: fine
    with pytest.raises(MlflowException) as changed:
        client.log_param(rid, "lr", "0.2")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "key='lr'" in changed.value.message
    got = client.get_run(rid)
    assert got.info.status == "FINISHED" and got.data.metrics == {"test_auc": 0.93}
    assert got.data.params == {"lr": "0.1", "evaluated_on": "holdout"}
    client.delete_run(rid)
    with pytest.raises(MlflowException, match="is deleted") as deleted:
        client.log_metric(rid, "late", 1.0)
    assert deleted.value.error_code == "INVALID_PARAMETER_VALUE"
