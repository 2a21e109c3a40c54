"""The plain JSON route: records or columns in, predictions out, with the request id
and the version that answered; bad input is a 4xx naming the problem."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.serving.conftest import Served


def test_records_and_columns_give_the_models_predictions(served: Served) -> None:
    X = served.frame.head(5)
    by_records = httpx.post(
        f"{served.url}/endpoints/iris/predict", json={"records": X.to_dict("records")}
    )
    assert by_records.status_code == 200, by_records.text
    doc = by_records.json()
    assert doc["predictions"] == served.classifier.predict(X).tolist()
    np.testing.assert_allclose(doc["probabilities"], served.classifier.predict_proba(X))
    assert doc["model_version"] == "1" and doc["model_uri"] == "models:/iris/1"
    assert doc["endpoint"] == "iris" and len(doc["request_id"]) == 32
    assert by_records.headers["X-Request-ID"] == doc["request_id"]

    by_columns = httpx.post(
        f"{served.url}/endpoints/iris/predict",
        json={"columns": X.to_dict("list")},
        headers={"X-Request-ID": "abc-123"},
    )
    assert by_columns.json()["predictions"] == doc["predictions"]
    assert by_columns.json()["request_id"] == "abc-123"

    arr = served.frame.to_numpy(dtype="float32")[:3, :3]
    reg = httpx.post(f"{served.url}/endpoints/reg/predict", json={"instances": arr.tolist()})
    np.testing.assert_allclose(reg.json()["predictions"], served.regressor.predict(arr), rtol=1e-6)
    assert "probabilities" not in reg.json()


def test_endpoints_are_listed_with_their_state(served: Served) -> None:
    listed = httpx.get(f"{served.url}/endpoints").json()["endpoints"]
    assert [(e["name"], e["state"], e["model_version"]) for e in listed] == [
        ("iris", "ready", "1"),
        ("reg", "ready", "1"),
    ]
    assert httpx.get(f"{served.url}/endpoints/iris").json()["outputs"] == [
        "predict",
        "predict_proba",
    ]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{oops", 422, "not valid JSON"),
        (b"[1, 2]", 422, "a JSON object"),
        (b'{"records": [{"sepal length (cm)": 1.0}]}', 422, "missing column(s)"),
        (
            b'{"records": [{"sepal length (cm)": "x", "sepal width (cm)": 1, '
            b'"petal length (cm)": 1, "petal width (cm)": 1}]}',
            422,
            "should be float64",
        ),
        (b'{"columns": {"a": [1, 2], "b": [1]}}', 422, "as many values"),
        (b'{"records": [], "columns": {}}', 422, "exactly one of"),
        (b'{"rows": []}', 422, "exactly one of"),
    ],
)
def test_bad_predict_bodies_are_4xx(served: Served, body: bytes, status: int, says: str) -> None:
    answer = httpx.post(
        f"{served.url}/endpoints/iris/predict",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == status, answer.text
    assert says in answer.json()["message"], answer.json()


def test_unknown_endpoint_is_404_naming_those_served(served: Served) -> None:
    answer = httpx.post(f"{served.url}/endpoints/nope/predict", json={"records": [{"a": 1}]})
    assert answer.status_code == 404
    assert "this server serves iris, reg" in answer.json()["message"]


def test_unstorable_strings_are_refused_at_the_edge(served: Served) -> None:
    nul = '{"records": [{"sepal length (cm)": "a\\u0000b"}]}'
    answer = httpx.post(
        f"{served.url}/endpoints/iris/predict",
        content=nul,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and "NUL" in answer.json()["message"]
    oip = httpx.post(
        f"{served.url}/v2/models/iris/infer",
        content='{"inputs": [{"name": "a\\u0000", "shape": [1], "datatype": "FP64", "data": [1]}]}',
        headers={"Content-Type": "application/json"},
    )
    assert oip.status_code == 400 and "NUL" in oip.json()["error"]


def test_metrics_count_requests_per_route(served: Served) -> None:
    httpx.post(f"{served.url}/endpoints/iris/predict", json={"records": [{"a": 1}]})
    text = httpx.get(f"{served.url}/metrics").text
    assert 'route="/endpoints/{name}/predict",status="422"' in text
