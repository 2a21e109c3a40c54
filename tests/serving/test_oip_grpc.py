"""The Open Inference Protocol v2 over gRPC against a live serving app (its lifespan runs
the gRPC server), driven by Triton's own gRPC client (``tritonclient.grpc``) and, for the
typed ``contents`` tritonclient never sends, by Triton's generated stub: health,
metadata, infer equal to the fitted model, a stored deployment's arm, and each bad input
answered with its status code and a message naming the problem, never INTERNAL/UNKNOWN."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from typer.testing import CliRunner

import loopstack as ls
from loopstack.server import create_serving_app
from loopstack.serving import DeploymentSource, EndpointSpec, ServingRuntime, deployments
from tests.conftest import ThreadedServer, free_port, server_output, stop_server
from tests.serving.conftest import log_models

grpcclient = pytest.importorskip("tritonclient.grpc")
import grpc  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402


@dataclass
class Live:
    """A serving app's gRPC address, its runtime, and the models behind its endpoints."""

    address: str
    runtime: ServingRuntime
    frame: pd.DataFrame  # iris features: the "iris" classifier's columns
    classifier: Any
    regressor: Any  # "reg": a float32 [N, 3] array model
    churn: Any  # "churn": an int64 and a string column, string labels
    churn_frame: pd.DataFrame

    def client(self) -> grpcclient.InferenceServerClient:
        return grpcclient.InferenceServerClient(self.address)

    def stub(self) -> tuple[grpc.Channel, service_pb2_grpc.GRPCInferenceServiceStub]:
        channel = grpc.insecure_channel(self.address)
        return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _churn_model() -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "visits": rng.integers(0, 20, 200).astype("int64"),
            "city": rng.choice(["oslo", "lima", "pune"], 200),
        }
    )
    labels = np.where((frame.visits > 8) | (frame.city == "lima"), "stays", "leaves")
    encode = ColumnTransformer(
        [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame, labels)
    with ls.start_run(experiment="serving-grpc") as run:
        run.log_model(model, name="churn", artifact_path="churn", sample_input=frame.head(5))
    return frame, model


def _serve(runtime: ServingRuntime, **kwargs: Any) -> tuple[ThreadedServer, str]:
    address = f"127.0.0.1:{free_port()}"
    app = create_serving_app(runtime, start=False, grpc_address=address, **kwargs)
    return ThreadedServer(app, lifespan="on"), address


@pytest.fixture
def live() -> Iterator[Live]:
    X, clf, reg = log_models()
    churn_frame, churn = _churn_model()
    runtime = ServingRuntime(
        [
            EndpointSpec("iris", "models:/iris@champion"),
            EndpointSpec("reg", "models:/reg/1"),
            EndpointSpec("churn", "models:/churn/1"),
        ]
    )
    runtime.load_all()
    assert runtime.ready, [e.error for e in runtime.endpoints]
    server, address = _serve(runtime)
    with server:
        yield Live(address, runtime, X, clf, reg, churn, churn_frame)


def _columns(frame: pd.DataFrame, n: int) -> list[grpcclient.InferInput]:
    inputs = []
    for name in frame.columns:
        values = frame[name].to_numpy()[:n]
        datatype = "BYTES" if values.dtype == object else "FP64"
        tensor = grpcclient.InferInput(name, [n], datatype)
        tensor.set_data_from_numpy(values.astype(object) if datatype == "BYTES" else values)
        inputs.append(tensor)
    return inputs


def test_health_and_metadata(live: Live) -> None:
    client = live.client()
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1")
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "loopstack" and server["version"] == ls.__version__
    meta = client.get_model_metadata("iris")
    assert (meta.name, list(meta.versions), meta.platform) == ("iris", ["1"], "sklearn")
    assert [(i.name, i.datatype, list(i.shape)) for i in meta.inputs] == [
        (c, "FP64", [-1]) for c in live.frame.columns
    ]
    assert [(o.name, o.datatype) for o in meta.outputs] == [
        ("predict", "INT64"),
        ("predict_proba", "FP64"),
    ]
    reg = client.get_model_metadata("reg", "1")
    assert [(i.name, i.datatype, list(i.shape)) for i in reg.inputs] == [
        ("input-0", "FP32", [-1, 3])
    ]
    assert [o.name for o in reg.outputs] == ["predict"]
    churn = client.get_model_metadata("churn")
    assert [(i.name, i.datatype) for i in churn.inputs] == [("visits", "INT64"), ("city", "BYTES")]


def test_the_classifier_answers_labels_and_probabilities_as_the_fitted_model(live: Live) -> None:
    client = live.client()
    outputs = [
        grpcclient.InferRequestedOutput("predict"),
        grpcclient.InferRequestedOutput("predict_proba"),
    ]
    X = live.frame.iloc[45:55]  # both sides of a class boundary
    result = client.infer("iris", _columns(X, 10), outputs=outputs, request_id="req-1")
    np.testing.assert_array_equal(result.as_numpy("predict"), live.classifier.predict(X))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), live.classifier.predict_proba(X))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("iris", "1", "req-1")
    assert [o.name for o in response.outputs] == ["predict", "predict_proba"]

    only = client.infer(
        "iris", _columns(X, 10), outputs=[grpcclient.InferRequestedOutput("predict_proba")]
    )
    assert [o.name for o in only.get_response().outputs] == ["predict_proba"]


def test_one_matrix_for_the_columns_and_every_output_by_default(live: Live) -> None:
    matrix = grpcclient.InferInput("features", [4, 4], "FP64")
    matrix.set_data_from_numpy(live.frame.tail(4).to_numpy())
    result = live.client().infer("iris", [matrix], model_version="1")
    np.testing.assert_array_equal(
        result.as_numpy("predict"), live.classifier.predict(live.frame.tail(4))
    )
    assert result.as_numpy("predict_proba").shape == (4, 3)


def test_an_fp32_array_model_takes_one_tensor(live: Live) -> None:
    arr = live.frame.to_numpy(dtype="float32")[:5, :3]
    tensor = grpcclient.InferInput("input-0", [5, 3], "FP32")
    tensor.set_data_from_numpy(arr)
    result = live.client().infer("reg", [tensor])
    np.testing.assert_allclose(result.as_numpy("predict"), live.regressor.predict(arr))


def test_int64_and_bytes_inputs_and_string_labels(live: Live) -> None:
    frame = live.churn_frame.head(8)
    visits = grpcclient.InferInput("visits", [8, 1], "INT64")
    visits.set_data_from_numpy(frame["visits"].to_numpy().reshape(8, 1))
    city = grpcclient.InferInput("city", [8], "BYTES")
    city.set_data_from_numpy(frame["city"].to_numpy().astype(object))
    result = live.client().infer("churn", [visits, city])
    labels = [v.decode() for v in result.as_numpy("predict")]
    assert labels == list(live.churn.predict(frame))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), live.churn.predict_proba(frame))


def _typed_request(frame: pd.DataFrame, n: int) -> Any:
    request = service_pb2.ModelInferRequest(model_name="iris", id="typed")
    for name in frame.columns:
        tensor = request.inputs.add(name=name, datatype="FP64", shape=[n])
        tensor.contents.fp64_contents.extend(frame[name].to_numpy()[:n].tolist())
    return request


def test_typed_contents_answer_as_raw_ones_do(live: Live) -> None:
    from tritonclient.utils import deserialize_bytes_tensor

    request = service_pb2.ModelInferRequest(model_name="churn")
    visits = request.inputs.add(name="visits", datatype="INT64", shape=[2])
    visits.contents.int64_contents.extend([3, 15])
    city = request.inputs.add(name="city", datatype="BYTES", shape=[2])
    city.contents.bytes_contents.extend([b"oslo", b"pune"])
    channel, stub = live.stub()
    with channel:
        iris = stub.ModelInfer(_typed_request(live.frame, 3))
        churn = stub.ModelInfer(request)
    assert iris.id == "typed" and [o.name for o in iris.outputs] == ["predict", "predict_proba"]
    labels = np.frombuffer(iris.raw_output_contents[0], dtype="<i8")
    np.testing.assert_array_equal(labels, live.classifier.predict(live.frame.head(3)))
    two = pd.DataFrame({"visits": [3, 15], "city": ["oslo", "pune"]})
    assert (churn.outputs[0].datatype, list(churn.outputs[0].shape)) == ("BYTES", [2])
    answered = [v.decode() for v in deserialize_bytes_tensor(churn.raw_output_contents[0])]
    assert answered == list(live.churn.predict(two))


def _fails(call: Any, code: grpc.StatusCode, says: str) -> None:
    with pytest.raises(InferenceServerException) as caught:
        call()
    assert caught.value.status() == str(code), caught.value
    assert says in caught.value.message(), caught.value.message()


def test_bad_inputs_give_their_status_and_name_the_problem(live: Live) -> None:
    client = live.client()
    X = live.frame

    def wrong_datatype() -> None:
        inputs = _columns(X, 2)
        inputs[0] = grpcclient.InferInput(X.columns[0], [2], "BYTES")
        inputs[0].set_data_from_numpy(np.array(["a", "b"], dtype=object))
        client.infer("iris", inputs)

    def wrong_shape() -> None:
        tensor = grpcclient.InferInput("features", [2, 3], "FP64")
        tensor.set_data_from_numpy(np.zeros((2, 3)))
        client.infer("iris", [tensor])

    def short_raw_contents() -> None:
        inputs = _columns(X, 2)
        inputs[1].set_shape([3])  # the raw bytes still hold 2 values
        client.infer("iris", inputs)

    def unknown_output() -> None:
        client.infer("iris", _columns(X, 2), outputs=[grpcclient.InferRequestedOutput("zz")])

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    _fails(wrong_datatype, invalid, "should be float64")
    _fails(wrong_shape, invalid, "should hold this model's 4 columns")
    _fails(lambda: client.infer("iris", _columns(X, 2)[:3]), invalid, "missing input(s)")
    _fails(short_raw_contents, invalid, "so 24 bytes; its binary data has 16")
    _fails(unknown_output, invalid, "unknown output(s) 'zz'")
    not_found = grpc.StatusCode.NOT_FOUND
    _fails(lambda: client.infer("nope", _columns(X, 2)), not_found, "no endpoint 'nope'")
    _fails(
        lambda: client.infer("iris", _columns(X, 2), model_version="7"),
        not_found,
        "got version '7'",
    )
    _fails(lambda: client.get_model_metadata("nope"), not_found, "this server serves")
    _fails(lambda: client.is_model_ready("iris", "7"), not_found, "serves version 1")
    _fails(
        lambda: client.infer("iris", _columns(X, 2), parameters={"routing_key": 1.5}),
        invalid,
        "'routing_key' parameter must be a string or an integer",
    )


def test_malformed_messages_are_invalid_argument(live: Live) -> None:
    def broken(change: Any) -> Any:
        request = _typed_request(live.frame, 2)
        change(request)
        return request

    def in_two_places(request: Any) -> None:
        request.raw_input_contents.extend([b"\0" * 16] * 4)

    def wrong_list(request: Any) -> None:
        request.inputs[0].contents.Clear()
        request.inputs[0].contents.int64_contents.extend([1, 2])

    def fp16_typed(request: Any) -> None:
        request.inputs[0].datatype = "FP16"

    def int8_overflow(request: Any) -> None:
        request.inputs[0].datatype = "INT8"
        request.inputs[0].contents.Clear()
        request.inputs[0].contents.int_contents.extend([1, 300])

    def shared_memory(request: Any) -> None:
        request.inputs[0].parameters["shared_memory_region"].string_param = "region"

    cases = [
        (lambda r: r.inputs[0].contents.fp64_contents.append(1.0), "so 2 values; got 3"),
        (lambda r: setattr(r.inputs[1], "datatype", "FLOAT"), "'datatype' must be one of"),
        (lambda r: r.inputs[1].shape.__setitem__(0, -2), "whole numbers >= 0"),
        (lambda r: setattr(r.inputs[1], "name", r.inputs[0].name), "is given twice"),
        (lambda r: r.raw_input_contents.append(b"\0" * 16), "raw_input_contents has 1 entries"),
        (in_two_places, "both contents and raw_input_contents"),
        (wrong_list, "so its values go in contents.fp64_contents; got contents.int64_contents"),
        (fp16_typed, "travels only in raw_input_contents"),
        (int8_overflow, "outside INT8's range"),
        (lambda r: r.ClearField("inputs"), "needs at least one input"),
        (shared_memory, "asks for shared memory (shared_memory_region)"),
    ]
    channel, stub = live.stub()
    with channel:
        for change, says in cases:
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(broken(change))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (says, caught.value)
            assert says in caught.value.details(), caught.value.details()


def test_oversized_messages_are_resource_exhausted_and_loading_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, _, _ = log_models()
    monkeypatch.setenv("LOOPSTACK_MAX_BODY_MB", "0.001")  # 1 KiB
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris/1")])
    server, address = _serve(runtime)
    with server:
        client = grpcclient.InferenceServerClient(address)
        assert client.is_server_live() and not client.is_server_ready()
        assert not client.is_model_ready("iris")
        _fails(
            lambda: client.infer("iris", _columns(X, 2)),
            grpc.StatusCode.UNAVAILABLE,
            "still loading",
        )
        runtime.load_all()
        assert client.is_server_ready() and client.is_model_ready("iris")
        assert client.infer("iris", _columns(X, 2)).as_numpy("predict").shape == (2,)
        _fails(
            lambda: client.infer("iris", _columns(X, 100)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "larger than max",
        )
    # the app's shutdown stopped the gRPC server: nothing listens any more
    with pytest.raises(InferenceServerException) as gone:
        client.is_server_live()
    assert gone.value.status() == str(grpc.StatusCode.UNAVAILABLE)


def test_a_stored_deployment_routes_each_request_and_names_the_arm() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with ls.start_run(experiment="deploy-grpc") as run:
        for c in (1.0, 0.01):
            model = LogisticRegression(C=c, max_iter=300).fit(X, y)
            run.log_model(model, name="churn", artifact_path=f"m{c}", sample_input=X.head(3))
    store = deployments()
    store.create("churn-api", "churn/1")
    store.canary("churn-api", "churn/2", weight=50)
    runtime = ServingRuntime([])
    server, address = _serve(runtime, deployments=DeploymentSource(store, ["churn-api"]))
    deadline = time.monotonic() + 60
    with server:
        while not runtime.ready:
            assert time.monotonic() < deadline, "the deployment did not load"
            time.sleep(0.05)
        client = grpcclient.InferenceServerClient(address)
        inputs = _columns(X, 2)

        def arm(key: str, by: str) -> tuple[str, str]:
            if by == "metadata":
                got = client.infer("churn-api", inputs, headers={"x-routing-key": key})
            else:
                got = client.infer("churn-api", inputs, parameters={"routing_key": key})
            response = got.get_response()
            return response.parameters["arm"].string_param, response.model_version

        by_key = {f"customer-{i}": arm(f"customer-{i}", "metadata") for i in range(24)}
        assert set(by_key.values()) == {("blue", "1"), ("canary", "2")}
        for key, answered in list(by_key.items())[:6]:  # sticky, by either carrier
            assert arm(key, "metadata") == answered and arm(key, "parameter") == answered
        assert client.get_model_metadata("churn-api").versions == ["1"]  # the primary's


def test_the_cli_refuses_grpc_it_cannot_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopstack.cli import app

    log_models()
    runner = CliRunner()
    same = runner.invoke(
        app, ["serve", "--model", "models:/iris/1", "--port", "8555", "--grpc-port", "8555"]
    )
    assert same.exit_code == 1 and "--grpc-port must differ from --port" in same.output
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        used = runner.invoke(app, ["serve", "-m", "models:/iris/1", "--grpc-port", str(busy)])
    assert used.exit_code == 1 and "pass --grpc-port with a free one" in used.output, used.output
    import loopstack.server._serving_app as serving_app

    monkeypatch.setattr(serving_app, "_GRPC_MODULES", ("loopstack_no_such_module",))
    missing = runner.invoke(app, ["serve", "-m", "models:/iris/1", "--grpc-port", str(free_port())])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert "pip install 'loopstack[grpc]'" in missing.output, missing.output
    assert len(missing.output.strip().splitlines()) == 1, missing.output
    assert "--grpc-port" in runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output


def _listening_sockets(port: int) -> set[str]:
    """The inodes of the sockets listening on ``port``, from /proc/net/tcp and tcp6 (grpc
    binds 127.0.0.1 as a v4-mapped IPv6 socket)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                found.add(fields[9])
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _workers(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        children += [int(c) for c in task.read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="SO_REUSEPORT sharing: Linux")
def test_two_workers_share_the_grpc_port(ls_home: Path) -> None:
    X, clf, _ = log_models()
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home)}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server
    command = [sys.executable, "-m", "loopstack.cli", "serve", "-m", "models:/iris@champion"]
    command += ["--port", str(port), "--grpc-port", str(grpc_port), "--workers", "2"]
    proc = subprocess.Popen([*command, "--no-access-log"], env=env, stdout=log, stderr=log)
    proc.log = log  # type: ignore[attr-defined] - as start_server leaves it, for stop_server
    try:
        deadline = time.monotonic() + 90
        while True:  # each worker binds the port once its lifespan starts
            assert proc.poll() is None, server_output(proc)
            workers = _workers(proc.pid)
            listening = _listening_sockets(grpc_port)
            owners = [w for w in workers if _socket_inodes(w) & listening]
            if len(workers) == 2 and len(owners) == 2 and len(listening) == 2:
                break
            assert time.monotonic() < deadline, f"not both bound:\n{server_output(proc)}"
            time.sleep(0.2)
        matrix = grpcclient.InferInput("features", [3, 4], "FP64")
        matrix.set_data_from_numpy(X.head(3).to_numpy())
        for _ in range(6):  # a fresh connection each: the kernel picks a worker
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            while True:  # a worker may still be loading: UNAVAILABLE, as its REST says 503
                try:
                    result = client.infer("iris", [matrix])
                    break
                except InferenceServerException as exc:
                    assert exc.status() == str(grpc.StatusCode.UNAVAILABLE), exc
                    assert time.monotonic() < deadline, exc
                    time.sleep(0.1)
            np.testing.assert_array_equal(result.as_numpy("predict"), clf.predict(X.head(3)))
            client.close()
        assert "OIP gRPC:   127.0.0.1:" in server_output(proc)
    finally:
        stop_server(proc)
    assert proc.returncode == 0, server_output(proc)


def test_http_only_serving_never_imports_grpc() -> None:
    code = (
        "import sys; from loopstack.server import create_serving_app, serve_endpoints; "
        "create_serving_app([], start=False); "
        "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('loopstack.server._')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "'grpc'" not in out.stdout and "_grpc" not in out.stdout and "_proto" not in out.stdout
    assert "loopstack.server._serving_app" in out.stdout  # the check looked at the right place
