"""The one serving entry point in the request path: batching of concurrent requests, a
bad request refused alone, the prediction log (readable with DuckDB, feedback joined),
shadow arms logged and compared, feedback feeding a bandit, and the settings' checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.errors import Invalid
from loopstack.server import create_serving_app
from loopstack.serving import (
    BatchSettings,
    DeploymentSource,
    DeploymentStore,
    EndpointSpec,
    Feedback,
    PredictionLog,
    ServingRuntime,
    deployments,
)
from loopstack.serving._deployments import validate_serving_options
from loopstack.serving._model_call import ModelCall, Prepared
from loopstack.store import open_stores
from loopstack.store.events import EventLog
from tests.conftest import ThreadedServer
from tests.serving.conftest import eventually, log_models

GENEROUS = BatchSettings(max_batch_size=64, max_latency_ms=400, max_queue=256)


@dataclass
class App:
    url: str
    app: Any
    plog: PredictionLog
    frame: pd.DataFrame
    clf: Any


@pytest.fixture
def app() -> Iterator[App]:
    """The iris classifier served with a generous latency budget and a prediction log."""
    X, clf, _ = log_models()
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    plog = PredictionLog(EventLog(open_stores()), flush_interval_s=30)
    served = create_serving_app(runtime, start=False, batching=GENEROUS, prediction_log=plog)
    try:
        with ThreadedServer(served) as server:
            yield App(server.url, served, plog, X, clf)
    finally:
        plog.close()


def _concurrently(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def _post(url: str, body: Any, **headers: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.post(url, json=body, headers=headers, timeout=30)


def test_concurrent_requests_share_a_call_and_each_gets_its_own_rows(app: App) -> None:
    url = f"{app.url}/endpoints/iris/predict"
    rows = app.frame.iloc[[0, 60, 120, 10, 70, 130, 20, 80, 140, 30, 90, 145]]
    records = rows.to_dict("records")
    answers = _concurrently([_post(url, {"records": [r]}) for r in records])
    assert [a.status_code for a in answers] == [200] * len(records), answers[0].text
    want_labels = app.clf.predict(rows)
    want_proba = app.clf.predict_proba(rows)
    for i, answer in enumerate(answers):
        doc = answer.json()
        assert doc["predictions"] == [want_labels[i]]
        np.testing.assert_allclose(doc["probabilities"], [want_proba[i]], rtol=1e-12)
    stats = app.app.state.answerer.batchers["iris/1"].stats
    assert stats.items == len(records) and max(stats.batch_sizes) > 1, stats.batch_sizes
    assert stats.batches < len(records)
    # the OIP route goes through the same batcher; several rows per request split back
    matrix = rows.head(3).to_numpy().ravel().tolist()
    tensor = {"name": "x", "shape": [3, 4], "datatype": "FP64", "data": matrix}
    infer = httpx.post(f"{app.url}/v2/models/iris/infer", json={"inputs": [tensor]}, timeout=30)
    assert infer.status_code == 200, infer.text
    assert infer.json()["outputs"][0]["data"] == list(want_labels[:3])
    assert stats.items == len(records) + 1


def test_a_bad_request_among_good_ones_gets_its_own_error(app: App) -> None:
    url = f"{app.url}/endpoints/iris/predict"
    good = app.frame.head(6).to_dict("records")
    bad = {k: v for k, v in good[0].items() if k != "petal width (cm)"}
    calls = [_post(url, {"records": [r]}) for r in good]
    calls.insert(3, _post(url, {"records": [bad]}, **{"X-Request-ID": "bad-1"}))
    long = {**good[1], "sepal length (cm)": "long"}
    calls.insert(5, _post(url, {"records": [long]}, **{"X-Request-ID": "bad-2"}))
    answers = _concurrently(calls)
    codes = [a.status_code for a in answers]
    assert codes == [200, 200, 200, 422, 200, 422, 200, 200], [a.text for a in answers]
    assert "petal width (cm)" in answers[3].json()["message"]
    assert "sepal length (cm)" in answers[5].json()["message"]
    want = app.clf.predict(app.frame.head(6))
    got = [a.json()["predictions"][0] for i, a in enumerate(answers) if i not in (3, 5)]
    assert got == list(want)
    # the two failures are logged apart from the six predictions, with the status answered
    assert app.plog.flush(20)
    assert app.plog.read_predictions("iris").num_rows == 6
    errors = app.plog.read_errors("iris").to_pylist()
    assert [(e["model_version"], e["status"], e["shadow"]) for e in errors] == [
        ("1", 422, False)
    ] * 2
    assert sorted(e["request_id"] for e in errors) == ["bad-1", "bad-2"]
    assert any("petal width (cm)" in e["error"] for e in errors)


def test_a_failing_batch_is_answered_request_by_request() -> None:
    log_models()
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris/1")])
    runtime.load_all()
    call = ModelCall(runtime.get("iris").model())
    good = call.prepare(load_iris(as_frame=True).data.head(2).to_dict("records"))
    broken = Prepared(np.zeros((1, 3)), 1)  # passed no check: the model call fails on it
    first, second, third = call.run([good, broken, good])
    assert isinstance(second, Exception)
    assert isinstance(first, dict) and isinstance(third, dict)
    np.testing.assert_array_equal(first["predict"], third["predict"])
    assert first["predict"].shape == (2,)


def test_predictions_and_feedback_are_logged_and_join_in_duckdb(app: App) -> None:
    url = f"{app.url}/endpoints/iris/predict"
    records = app.frame.head(2).to_dict("records")
    for rid in ("req-a", "req-b"):
        got = httpx.post(url, json={"records": records}, headers={"X-Request-ID": rid})
        assert got.status_code == 200 and got.headers["X-Request-ID"] == rid
    fb = httpx.post(
        f"{app.url}/endpoints/iris/feedback",
        json=[{"request_id": "req-a", "label": [0, 0]}, {"request_id": "req-b", "reward": 1}],
    )
    assert fb.status_code == 200, fb.text
    results = fb.json()["results"]
    assert [r["logged"] for r in results] == [True, True]
    assert results[1]["reward_attributed"] is False and "not a bandit" in results[1]["why"]
    assert app.plog.flush(20)
    joined = app.plog.read_with_feedback("iris")
    rows = {r["request_id"]: r for r in joined.to_pylist()}
    assert set(rows) == {"req-a", "req-b"}
    assert rows["req-a"]["label"] == "[0,0]" and rows["req-b"]["reward"] == 1.0
    assert rows["req-a"]["model_version"] == "1" and rows["req-a"]["shadow"] is False
    predictions = app.plog.read_predictions("iris")  # noqa: F841 - DuckDB reads it by name
    inputs = duckdb.sql(
        "SELECT json_array_length(inputs) AS n, output->>'$.predict[0]' AS label, latency_ms "
        "FROM predictions WHERE request_id = 'req-a'"
    ).fetchall()
    assert inputs[0][0] == 2 and int(inputs[0][1]) == app.clf.predict(app.frame.head(1))[0]
    assert inputs[0][2] > 0


@pytest.mark.parametrize(
    "body, message",
    [
        ("not json", "not JSON"),
        ([], "non-empty list"),
        ({"label": 1}, "request_id"),
        ({"request_id": "r"}, "a label or a reward"),
        ({"request_id": "r", "reward": "high"}, "reward must be a number"),
        ({"request_id": "r", "label": 1, "score": 2}, "unknown field"),
        ([{"request_id": "r", "label": 1}, 7], "feedback[1]"),
    ],
)
def test_bad_feedback_is_a_clear_4xx(app: App, body: Any, message: str) -> None:
    url = f"{app.url}/endpoints/iris/feedback"
    got = (
        httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        if isinstance(body, str)
        else httpx.post(url, json=body)
    )
    assert got.status_code == 422 and message in got.json()["message"], got.text
    assert httpx.post(f"{app.url}/endpoints/nope/feedback", json=body).status_code in (404, 422)


@dataclass
class Deployed:
    url: str
    app: Any
    store: DeploymentStore
    runtime: ServingRuntime
    plog: PredictionLog
    records: list[dict[str, Any]]


@pytest.fixture
def deployed() -> Iterator[Deployed]:
    """Two versions of churn behind a stored deployment, with a prediction log."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    with ls.start_run(experiment="answer-path") as run:
        for c in (1.0, 0.01):
            model = LogisticRegression(C=c, max_iter=300).fit(X, y)
            run.log_model(model, name="churn", artifact_path=f"m{c}", sample_input=X.head(3))
    store = deployments()
    store.create("churn-api", "churn/1")
    runtime = ServingRuntime([])
    source = DeploymentSource(store, ["churn-api"], alias_refresh_s=0.1, bandit_ttl_s=0.0)
    plog = PredictionLog(EventLog(open_stores()), flush_interval_s=30)
    served = create_serving_app(runtime, refresh_s=0.1, deployments=source, prediction_log=plog)
    eventually(lambda: runtime.ready)
    try:
        with ThreadedServer(served) as server:
            yield Deployed(server.url, served, store, runtime, plog, X.head(5).to_dict("records"))
    finally:
        served.state.stop_refresh.set()
        plog.close()


def test_shadow_copies_are_logged_and_compared_with_the_primary(deployed: Deployed) -> None:
    deployed.store.shadow("churn-api", "churn/2")
    eventually(lambda: deployed.runtime.deployments["churn-api"].policy == "shadow")
    url = f"{deployed.url}/endpoints/churn-api/predict"
    for i in range(6):
        doc = httpx.post(url, json={"records": deployed.records}, headers={"X-Request-ID": f"s{i}"})
        assert (doc.json()["arm"], doc.json()["model_version"]) == ("blue", "1")
    answerer = deployed.app.state.answerer
    eventually(lambda: answerer.shadow_report("churn-api", "shadow")["compared_rows"] >= 30)
    listed = httpx.get(f"{deployed.url}/endpoints/churn-api").json()
    shadow = next(a for a in listed["arms"] if a["role"] == "shadow")["shadow"]
    assert shadow["compared_rows"] == 30 and shadow["errors"] == 0
    assert 0 <= shadow["agreement"] <= 1 and shadow["score_diff"] > 0  # C=0.01 differs
    assert deployed.plog.flush(20)
    rows = deployed.plog.read_predictions("churn-api").to_pylist()
    by_role = {(r["request_id"], r["shadow"]): r for r in rows}
    assert len(by_role) == 12
    copy = by_role[("s0", True)]
    assert copy["arm"] == "shadow" and copy["model_version"] == "2"
    assert by_role[("s0", False)]["arm"] == "blue"
    metrics = httpx.get(f"{deployed.url}/metrics").text
    labels = 'arm="shadow",endpoint="churn-api",model_version="2"'
    assert f"loopstack_serving_shadow_compared_rows_total{{{labels}}} 30.0" in metrics


def test_a_reward_goes_to_the_bandit_arm_that_answered(deployed: Deployed) -> None:
    deployed.store.bandit(
        "churn-api", {"a": "churn/1", "b": "churn/2"}, strategy="epsilon", epsilon=0.0
    )
    deployed.store.record_reward("churn-api", "a", 0.0)
    deployed.store.record_reward("churn-api", "b", 1.0)
    eventually(lambda: deployed.runtime.deployments["churn-api"].policy == "bandit")
    url = f"{deployed.url}/endpoints/churn-api/predict"
    answer = httpx.post(url, json={"records": deployed.records}, headers={"X-Request-ID": "r1"})
    assert answer.json()["arm"] == "b"
    before = deployed.store.bandit_state("churn-api")["b"].pulls
    fb = httpx.post(
        f"{deployed.url}/endpoints/churn-api/feedback",
        json=[
            {"request_id": "r1", "reward": 0.0},  # the arm remembered for r1
            {"request_id": "elsewhere", "reward": 1.0, "arm": "a"},  # the arm given
            {"request_id": "unknown", "reward": 1.0},  # nobody knows: not attributed
        ],
    )
    assert fb.status_code == 200, fb.text
    results = fb.json()["results"]
    assert [(r["arm"], r["reward_attributed"]) for r in results] == [
        ("b", True),
        ("a", True),
        (None, False),
    ]
    assert "give 'arm'" in results[2]["why"]
    state = deployed.store.bandit_state("churn-api")
    assert state["b"].pulls == before + 1 and state["a"].pulls == 2
    # an arm recorded only in the prediction log (this server forgot it) is found there
    answerer = deployed.app.state.answerer
    answerer._recent.clear()
    assert deployed.plog.flush(20)
    again = answerer.feedback("churn-api", [Feedback("r1", reward=1.0)])
    assert again[0]["arm"] == "b" and again[0]["reward_attributed"] is True


def test_batch_settings_come_from_a_deployment_s_options_and_are_checked() -> None:
    base = BatchSettings()
    assert (base.max_batch_size, base.max_latency_ms, base.max_queue) == (32, 2.0, 256)
    tuned = base.with_options({"max_batch_size": 8, "batch_latency_ms": 0.5, "strategy": "x"})
    assert (tuned.max_batch_size, tuned.max_latency_ms, tuned.max_queue) == (8, 0.5, 256)
    for options, message in [
        ({"max_batch_size": 0}, "'max_batch_size' must be an integer from 1 to 4096; got 0"),
        ({"max_batch_size": 2.5}, "an integer"),
        ({"batch_latency_ms": "fast"}, "'batch_latency_ms' must be a number"),
        ({"max_queue": True}, "'max_queue'"),
    ]:
        with pytest.raises(Invalid, match=message):
            validate_serving_options(options)
    with pytest.raises(Invalid, match="max_batch_size"):
        BatchSettings(max_batch_size=-1)
    with pytest.raises(Invalid, match="max_queue"):
        base.with_options({"max_queue": 0})


def test_a_lone_request_does_not_wait_for_the_latency_budget() -> None:
    from loopstack.serving import Batcher

    async def main() -> list[int]:
        batcher = Batcher(
            lambda xs: [x + 1 for x in xs],
            max_latency_ms=60_000,
            dispatch_when_idle=True,
        )
        # a minute's budget: only an idle dispatch answers within the 10 s bound
        return [await asyncio.wait_for(batcher.submit(i), 10) for i in range(3)]

    assert asyncio.run(main()) == [1, 2, 3]


def test_a_deployment_s_batch_options_are_used_for_its_requests(deployed: Deployed) -> None:
    import dataclasses

    answerer = deployed.app.state.answerer
    assert answerer.settings_for("churn-api") == BatchSettings()
    current = deployed.runtime.deployment("churn-api")
    assert current is not None
    for options, want in [
        ({"max_batch_size": 4, "batch_latency_ms": 1.0}, BatchSettings(4, 1.0, 256)),
        ({"max_queue": 0}, BatchSettings()),  # stored unchecked: ignored, the flags hold
    ]:
        tuned = dataclasses.replace(current, options=options)
        specs = {a: e.spec for a, e in deployed.runtime.arm_endpoints("churn-api").items()}
        deployed.runtime.set_deployment(tuned, specs)
        assert answerer.settings_for("churn-api") == want
        url = f"{deployed.url}/endpoints/churn-api/predict"
        assert httpx.post(url, json={"records": deployed.records}).status_code == 200
    sizes = sorted(lane.batcher.max_batch_size for lane in answerer._lanes.values())
    assert sizes == [4, 32]  # one batcher per model and settings


def test_a_worker_takes_its_settings_from_loopstack_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopstack.server._serving_app import PREDICTION_LOG_ENV, app_from_environment
    from loopstack.serving import BATCHING_ENV, ENDPOINTS_ENV, specs_to_env

    log_models()
    monkeypatch.setenv(ENDPOINTS_ENV, specs_to_env([EndpointSpec("iris", "models:/iris/1")]))
    monkeypatch.setenv(BATCHING_ENV, BatchSettings(8, 0.5, 16).to_env())
    monkeypatch.setenv(PREDICTION_LOG_ENV, "0")  # --no-prediction-log
    quiet = app_from_environment()
    # each app loads its models in a thread: let it finish within this test
    assert quiet.state.runtime.wait_ready(60)
    answerer = quiet.state.answerer
    assert answerer.settings == BatchSettings(8, 0.5, 16) and answerer.prediction_log is None
    monkeypatch.setenv(PREDICTION_LOG_ENV, "1")
    monkeypatch.setenv(BATCHING_ENV, '{"max_queue": -3}')
    with pytest.raises(Invalid, match="max_queue"):
        app_from_environment()
    monkeypatch.delenv(BATCHING_ENV)
    logging = app_from_environment()
    assert logging.state.runtime.wait_ready(60)
    plog = logging.state.answerer.prediction_log
    assert isinstance(plog, PredictionLog)
    plog.close()


def test_a_worker_logs_predictions_in_the_project_it_serves() -> None:
    from loopstack import auth
    from loopstack.config import set_project

    fraud = auth.create_project(open_stores().db, "fraud", actor="root")
    set_project("fraud")
    try:
        served = create_serving_app([], start=False)
        plog = served.state.answerer.prediction_log
        assert plog is not None and plog.events.project_id == fraud.project_id != 0
        plog.close()
    finally:
        set_project(None)


def test_a_shadow_copy_that_fails_is_logged_as_the_shadow_s_error(deployed: Deployed) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    wider = X.assign(extra=1.0)  # a version that needs a column the callers do not send
    with ls.start_run(experiment="answer-path") as run:
        model = LogisticRegression(max_iter=300).fit(wider, y)
        run.log_model(model, name="churn", artifact_path="wide", sample_input=wider.head(3))
    deployed.store.shadow("churn-api", "churn/3")
    eventually(lambda: deployed.runtime.deployments["churn-api"].policy == "shadow")
    url = f"{deployed.url}/endpoints/churn-api/predict"
    for i in range(3):
        answer = httpx.post(
            url, json={"records": deployed.records}, headers={"X-Request-ID": f"w{i}"}
        )
        assert answer.status_code == 200, answer.text
    answerer = deployed.app.state.answerer
    eventually(lambda: answerer.shadow_report("churn-api", "shadow")["errors"] == 3)
    assert deployed.plog.flush(20)
    errors = deployed.plog.read_errors("churn-api").to_pylist()
    assert sorted(e["request_id"] for e in errors) == ["w0", "w1", "w2"]
    assert {(e["model_version"], e["arm"], e["shadow"], e["status"]) for e in errors} == {
        ("3", "shadow", True, 422)
    }
    assert all("extra" in e["error"] for e in errors)
