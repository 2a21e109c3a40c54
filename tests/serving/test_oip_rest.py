"""Open Inference Protocol v2 REST against a live serving app, driven by Triton's own
HTTP client (``tritonclient.http``): health, metadata, infer in JSON and binary, and
bad input answered 4xx with a message naming the problem, never 5xx."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from loopstack.server import create_serving_app
from loopstack.serving import EndpointSpec, ServingRuntime
from tests.conftest import ThreadedServer
from tests.serving.conftest import Served, log_models

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


def _client(served: Served) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(served.url.removeprefix("http://"))


def _columns(served: Served, n: int, binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for name in served.frame.columns:
        tensor = httpclient.InferInput(name, [n], "FP64")
        tensor.set_data_from_numpy(served.frame[name].to_numpy()[:n], binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_health_and_metadata_through_tritonclient(served: Served) -> None:
    client = _client(served)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1")
    meta = client.get_model_metadata("iris")
    assert meta["name"] == "iris" and meta["versions"] == ["1"] and meta["platform"] == "sklearn"
    assert [i["name"] for i in meta["inputs"]] == list(served.frame.columns)
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    reg = client.get_model_metadata("reg", "1")
    assert reg["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 3]}]
    assert [o["name"] for o in reg["outputs"]] == ["predict"]
    with pytest.raises(InferenceServerException, match="no endpoint 'nope'"):
        client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="serves version 1; got version '7'"):
        client.get_model_metadata("iris", "7")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_classifier_answers_labels_and_probabilities(served: Served, binary: bool) -> None:
    client = _client(served)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=binary),
        httpclient.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer("iris", _columns(served, 6, binary), outputs=outputs, request_id="req-1")
    X = served.frame.head(6)
    np.testing.assert_array_equal(result.as_numpy("predict"), served.classifier.predict(X))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba").reshape(6, -1), served.classifier.predict_proba(X)
    )
    response = result.get_response()
    assert response["model_name"] == "iris" and response["model_version"] == "1"
    assert response["id"] == "req-1"


def test_one_matrix_for_the_columns_and_all_outputs_binary_by_default(served: Served) -> None:
    client = _client(served)
    matrix = httpclient.InferInput("features", [4, 4], "FP64")
    matrix.set_data_from_numpy(served.frame.head(4).to_numpy(), binary_data=True)
    result = client.infer("iris", [matrix], model_version="1")  # no outputs: all, binary
    np.testing.assert_array_equal(
        result.as_numpy("predict"), served.classifier.predict(served.frame.head(4))
    )
    assert result.as_numpy("predict_proba").size == 12


def test_array_model_takes_one_tensor(served: Served) -> None:
    client = _client(served)
    arr = served.frame.to_numpy(dtype="float32")[:5, :3]
    tensor = httpclient.InferInput("input-0", [5, 3], "FP32")
    tensor.set_data_from_numpy(arr, binary_data=False)
    result = client.infer("reg", [tensor], outputs=[httpclient.InferRequestedOutput("predict")])
    np.testing.assert_allclose(result.as_numpy("predict"), served.regressor.predict(arr))


def _bad(served: Served, make: object, says: str) -> None:
    client = _client(served)
    with pytest.raises(InferenceServerException) as caught:
        make(client)  # type: ignore[operator]
    assert caught.value.status() in ("400", "404"), caught.value
    assert says in caught.value.message(), caught.value.message()


def test_bad_inputs_are_4xx_naming_the_problem(served: Served) -> None:
    def wrong_datatype(client: httpclient.InferenceServerClient) -> None:
        inputs = _columns(served, 2, False)
        inputs[0] = httpclient.InferInput(served.frame.columns[0], [2], "BYTES")
        inputs[0].set_data_from_numpy(np.array(["a", "b"], dtype=object), binary_data=False)
        client.infer("iris", inputs)

    def wrong_shape(client: httpclient.InferenceServerClient) -> None:
        tensor = httpclient.InferInput("features", [2, 3], "FP64")
        tensor.set_data_from_numpy(np.zeros((2, 3)), binary_data=True)
        client.infer("iris", [tensor])

    def missing_input(client: httpclient.InferenceServerClient) -> None:
        client.infer("iris", _columns(served, 2, True)[:3])

    def unknown_model(client: httpclient.InferenceServerClient) -> None:
        client.infer("nope", _columns(served, 2, True))

    def unknown_output(client: httpclient.InferenceServerClient) -> None:
        client.infer(
            "iris", _columns(served, 2, False), outputs=[httpclient.InferRequestedOutput("zz")]
        )

    _bad(served, wrong_datatype, "should be float64")
    _bad(served, wrong_shape, "should hold this model's 4 columns")
    _bad(served, missing_input, "missing input(s) 'petal width (cm)'")
    _bad(served, unknown_model, "no endpoint 'nope'")
    _bad(served, unknown_output, "unknown output(s) 'zz'")


def test_malformed_and_oversized_bodies_are_4xx(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{served.url}/v2/models/iris/infer"
    cases = [
        (b"{not json", {}, 400, "not valid JSON"),
        (
            b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1]}]}',
            {},
            400,
            "so 2 values; got 1",
        ),
        (b'{"inputs": "x"}', {}, 400, "non-empty list"),
        (b"{}", {"Inference-Header-Content-Length": "abc"}, 400, "whole number"),
        (b'{"inputs": [1]}', {"Inference-Header-Content-Length": "500"}, 400, "the body has"),
    ]
    for body, headers, status, says in cases:
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.status_code == status, (body, answer.text)
        assert says in answer.json()["error"], answer.json()
    answer = httpx.get(f"{served.url}/v2/models/iris/nowhere")
    assert answer.status_code == 404 and "error" in answer.json()

    monkeypatch.setenv("LOOPSTACK_MAX_BODY_MB", "0.001")  # 1 KiB
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris/1")])
    runtime.load_all()
    with ThreadedServer(create_serving_app(runtime, start=False)) as small:
        big = b'{"inputs": [' + b" " * 4096 + b"]}"
        answer = httpx.post(f"{small.url}/v2/models/iris/infer", content=big)
        assert answer.status_code == 413, answer.text
        assert "LOOPSTACK_MAX_BODY_MB" in answer.json()["error"]
        answer = httpx.post(
            f"{small.url}/endpoints/iris/predict",
            content=big,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"] == "TooLarge" and "at most" in answer.json()["message"]


def test_not_ready_until_loaded_and_warm() -> None:
    log_models()
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    with ThreadedServer(create_serving_app(runtime, start=False)) as server:
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        assert client.is_server_live()
        assert not client.is_server_ready() and not client.is_model_ready("iris")
        answer = httpx.post(f"{server.url}/v2/models/iris/infer", content=b"{}")
        assert answer.status_code == 503 and "still loading" in answer.json()["error"]
        runtime.load_all()
        assert client.is_server_ready() and client.is_model_ready("iris")


def test_a_model_that_cannot_load_is_never_ready_and_says_why() -> None:
    log_models()
    runtime = ServingRuntime([EndpointSpec("gone", "models:/iris/9")])
    runtime.load_all()
    with ThreadedServer(create_serving_app(runtime, start=False)) as server:
        answer = httpx.get(f"{server.url}/v2/models/gone/ready")
        assert answer.status_code == 400 and not answer.json()["ready"]
        assert "9" in answer.json()["error"]
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 400


def test_the_onnx_copy_serves_where_the_version_has_one() -> None:
    pytest.importorskip("skl2onnx", reason="install loopstack[onnx] to run this test")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import loopstack as ls

    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = LogisticRegression(max_iter=300).fit(X, y)
    with ls.start_run(experiment="serving") as run:
        run.log_model(clf, name="fast", sample_input=X.head(20), onnx=True)
    runtime = ServingRuntime(
        [
            EndpointSpec("fast", "models:/fast/1", prefer_onnx=True),
            EndpointSpec("plain", "models:/fast/1"),
        ]
    )
    runtime.load_all()
    assert runtime.get("fast").model().model.uses_onnx
    assert not runtime.get("plain").model().model.uses_onnx and len(runtime.cache) == 2
    with ThreadedServer(create_serving_app(runtime, start=False)) as server:
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        matrix = httpclient.InferInput("features", [6, 4], "FP64")
        matrix.set_data_from_numpy(X.tail(6).to_numpy(), binary_data=True)
        result = client.infer("fast", [matrix])
        np.testing.assert_array_equal(result.as_numpy("predict"), clf.predict(X.tail(6)))
        np.testing.assert_allclose(
            result.as_numpy("predict_proba").reshape(6, 3),
            clf.predict_proba(X.tail(6)),
            atol=1e-4,
        )
