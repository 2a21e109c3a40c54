"""A stored deployment served: each request routed by its policy, and a change made
through the store picked up by the running replica without a dropped request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.server import create_serving_app
from loopstack.serving import DeploymentSource, DeploymentStore, ServingRuntime, deployments
from tests.conftest import ThreadedServer
from tests.serving.conftest import eventually


@dataclass
class Live:
    url: str
    store: DeploymentStore
    runtime: ServingRuntime
    records: list[dict[str, Any]]

    def predict(self, key: str | None = None) -> httpx.Response:
        headers = {} if key is None else {"X-Routing-Key": key}
        return httpx.post(
            f"{self.url}/endpoints/churn-api/predict",
            json={"records": self.records},
            headers=headers,
            timeout=30,
        )


@pytest.fixture
def live(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    """Two versions of churn, a deployment on version 1, served with a fast refresh.

    Its ``param`` (indirect) is where the replica reads the deployments and the registry:
    ``local`` (SQLite, the default), ``server`` (a live tracking server over SQLite) or
    ``server-postgresql``.
    """
    kind = getattr(request, "param", "local")
    if kind == "local":
        yield from _live()
        return
    if kind == "server-postgresql":
        monkeypatch.setenv("LOOPSTACK_DB_URL", request.getfixturevalue("pg_url"))
    from loopstack.server import create_app
    from loopstack.store.remote import close_shared

    with ThreadedServer(create_app()) as tracking:
        monkeypatch.delenv("LOOPSTACK_DB_URL", raising=False)
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", tracking.url)
        yield from _live()
        close_shared(tracking.url)


def _live() -> Iterator[Live]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = pd.DataFrame(X)
    with ls.start_run(experiment="deploy-serving") as run:
        for c in (1.0, 0.01):
            model = LogisticRegression(C=c, max_iter=300).fit(frame, y)
            run.log_model(model, name="churn", artifact_path=f"m{c}", sample_input=frame.head(3))
    store = deployments()
    store.create("churn-api", "churn/1")
    runtime = ServingRuntime([])
    app = create_serving_app(
        runtime,
        refresh_s=0.1,
        deployments=DeploymentSource(store, ["churn-api"], alias_refresh_s=0.1),
    )
    eventually(lambda: runtime.ready)
    try:
        with ThreadedServer(app) as server:
            yield Live(server.url, store, runtime, frame.head(2).to_dict("records"))
    finally:
        app.state.stop_refresh.set()


@pytest.mark.parametrize(
    "live",
    ["local", "server", pytest.param("server-postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_the_primary_answers_and_a_blue_green_switch_drops_no_request(live: Live) -> None:
    first = live.predict()
    assert first.status_code == 200, first.text
    assert (first.json()["model_version"], first.json()["arm"]) == ("1", "blue")

    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            got = live.predict()
            answers.append((got.status_code, got.json().get("model_version")))

    sender = threading.Thread(target=client)
    sender.start()
    try:
        eventually(lambda: len(answers) > 3)
        live.store.set("churn-api", "churn/2")
        eventually(lambda: live.predict().json()["model_version"] == "2")
        seen = len(answers)
        eventually(lambda: len(answers) > seen + 3)
    finally:
        stop.set()
        sender.join(timeout=30)
    assert all(status == 200 and version in ("1", "2") for status, version in answers), answers
    assert answers[-1][1] == "2"
    assert live.predict().json()["arm"] == "green"
    # the old primary stands by: loaded and warm, never answering
    assert live.runtime.ready and live.runtime.deployments["churn-api"].arm("blue").role == (
        "standby"
    )

    live.store.rollback("churn-api")
    eventually(lambda: live.predict().json()["model_version"] == "1")


def test_a_canary_is_sticky_per_key_and_both_arms_answer(live: Live) -> None:
    live.store.canary("churn-api", "churn/2", weight=50)
    eventually(lambda: live.runtime.deployments["churn-api"].policy == "canary")
    by_key: dict[str, set[tuple[str, str]]] = {}
    for i in range(24):
        for _ in range(2):
            doc = live.predict(f"customer-{i}").json()
            by_key.setdefault(f"customer-{i}", set()).add((doc["arm"], doc["model_version"]))
    assert all(len(seen) == 1 for seen in by_key.values()), by_key
    assert {next(iter(s)) for s in by_key.values()} == {("blue", "1"), ("canary", "2")}
    # the body's routing_key does the same as the header
    body = {"records": live.records, "routing_key": "customer-3"}
    doc = httpx.post(f"{live.url}/endpoints/churn-api/predict", json=body).json()
    assert {(doc["arm"], doc["model_version"])} == by_key["customer-3"]

    infer = httpx.post(
        f"{live.url}/v2/models/churn-api/infer",
        headers={"X-Routing-Key": "customer-3"},
        json={
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [live.records[0][c]]}
                for c in live.records[0]
            ]
        },
    )
    assert infer.status_code == 200, infer.text
    got = infer.json()
    assert {(got["parameters"]["arm"], got["model_version"])} == by_key["customer-3"]


def test_a_shadow_never_answers_but_gets_copies(live: Live) -> None:
    live.store.shadow("churn-api", "churn/2")
    eventually(lambda: live.runtime.deployments["churn-api"].policy == "shadow")
    for i in range(10):
        doc = live.predict(f"k{i}").json()
        assert (doc["arm"], doc["model_version"]) == ("blue", "1")
    eventually(
        lambda: live.runtime.shadow_stats.get(("churn-api", "shadow"), {}).get("runs", 0) >= 10
    )
    assert live.runtime.shadow_stats[("churn-api", "shadow")]["errors"] == 0


def test_a_bandit_routes_to_the_arm_its_rewards_favour(live: Live) -> None:
    live.store.bandit(
        "churn-api", {"a": "churn/1", "b": "churn/2"}, strategy="epsilon", epsilon=0.0
    )
    live.store.record_reward("churn-api", "a", 0.0)
    live.store.record_reward("churn-api", "b", 1.0)
    eventually(lambda: live.runtime.deployments["churn-api"].policy == "bandit")
    answers = {(d["arm"], d["model_version"]) for d in (live.predict().json() for _ in range(8))}
    assert answers == {("b", "2")}
    listed = httpx.get(f"{live.url}/endpoints/churn-api").json()
    assert listed["policy"] == "bandit" and listed["revision"] == 2
    assert [(a["name"], a["model_version"]) for a in listed["arms"]] == [("a", "1"), ("b", "2")]


def test_an_arm_on_an_alias_follows_it_as_it_moves(live: Live) -> None:
    from loopstack.registry import registry

    registry().set_alias("churn", "champion", 1)
    live.store.set("churn-api", "churn@champion")
    eventually(lambda: live.runtime.deployments["churn-api"].revision == 2)
    assert live.predict().json()["model_version"] == "1"
    registry().set_alias("churn", "champion", 2)  # no new revision of the deployment
    eventually(lambda: live.predict().json()["model_version"] == "2")
    assert live.runtime.deployments["churn-api"].revision == 2


def test_the_cli_serves_a_stored_deployment_and_refuses_unknown_ones(ls_home: Any) -> None:
    import os
    import subprocess
    import sys
    import tempfile

    from typer.testing import CliRunner

    from loopstack.cli import app
    from tests.conftest import free_port, server_output, stop_server
    from tests.serving.conftest import log_models

    X, _, _ = log_models()
    deployments().create("iris-api", "iris@champion")
    runner = CliRunner()
    nothing = runner.invoke(app, ["serve", "--port", "1"])
    assert nothing.exit_code == 1 and "nothing to serve" in nothing.output, nothing.output
    unknown = runner.invoke(app, ["serve", "--deployment", "nope", "--port", "1"])
    assert unknown.exit_code == 1 and "nope" in unknown.output, unknown.output
    assert "Traceback" not in unknown.output

    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server
    command = [sys.executable, "-m", "loopstack.cli", "serve", "--deployment", "iris-api"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--no-access-log"],
        env={**os.environ, "LOOPSTACK_HOME": str(ls_home)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log = log  # type: ignore[attr-defined] - as stop_server expects
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, server_output(proc)
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, timeout_s=90)
        got = httpx.post(
            f"{url}/endpoints/iris-api/predict", json={"records": X.head(2).to_dict("records")}
        )
        assert got.status_code == 200, got.text
        assert (got.json()["arm"], got.json()["model_version"]) == ("blue", "1")
    finally:
        stop_server(proc)
