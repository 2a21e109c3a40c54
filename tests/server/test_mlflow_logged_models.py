"""MLflow 3 logged models: the real ``mlflow`` client's most common programs, unchanged.

``mlflow.<flavor>.log_model`` creates a logged model, uploads its files under the
model's own location, links it to the run, copies the run's metrics to it and
finalizes it; ``registered_model_name=`` and ``register_model`` make ordinary loopstack
versions from it (every file's sha256, the run, the flavor), which ``mlflow.pyfunc``,
``mlflow.<flavor>.load_model`` and ``ls.load_model`` load back.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import LoggedModelStatus  # noqa: E402
from sklearn.datasets import load_iris, make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import loopstack as ls  # noqa: E402
from loopstack.errors import ArtifactCorrupted  # noqa: E402
from loopstack.registry import registry  # noqa: E402
from loopstack.store import open_stores  # noqa: E402

pytestmark = [
    pytest.mark.mlflow,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


@pytest.fixture
def server(mlflow_uri: str) -> str:
    """The live server, as the MLflow client's tracking URI (see tests/server/conftest.py)."""
    return mlflow_uri


def _data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=200, n_features=4, random_state=7)


def _manifest(prefix: str) -> dict[str, str]:
    """``{path under prefix: sha256}`` of what the artifact store holds."""
    root = prefix.strip("/")
    return {
        f.path: f.sha256
        for f in open_stores().artifacts.list(root, recursive=True)
        if not f.is_dir and f.sha256
    }


#: given, so the client neither infers requirements nor imports skops (which imports torch:
#: slow); the defaults are what the first test uses
FAST = {"pip_requirements": ["scikit-learn", "cloudpickle"], "serialization_format": "cloudpickle"}


def _log_sklearn(**kwargs: Any) -> tuple[LogisticRegression, Any, str]:
    X, y = _data()
    clf = LogisticRegression(C=0.5, max_iter=500).fit(X, y)
    mlflow.set_experiment("churn-exp")
    with mlflow.start_run() as run:
        mlflow.log_param("C", 0.5)
        mlflow.log_metric("accuracy", float(clf.score(X, y)))
        info = mlflow.sklearn.log_model(clf, name="model", input_example=X[:5], **kwargs)
    return clf, info, run.info.run_id


@pytest.mark.slow  # the client imports skops (and torch) and infers the pip requirements
@pytest.mark.timeout(900)
def test_sklearn_log_model_registers_and_loads_everywhere(server: str) -> None:
    X, _ = _data()
    clf, info, rid = _log_sklearn(registered_model_name="churn")
    client = MlflowClient()

    assert info.model_id.startswith("m-") and len(info.model_id) == 34
    assert info.registered_model_version == "1"
    model = mlflow.get_logged_model(info.model_id)
    exp_id = model.experiment_id
    assert model.status == LoggedModelStatus.READY
    assert (model.name, model.source_run_id) == ("model", rid)
    assert model.artifact_location == f"mlflow-artifacts:/{exp_id}/models/{info.model_id}/artifacts"
    assert model.params["C"] == "0.5"
    assert [(m.key, m.run_id, m.model_id) for m in model.metrics] == [
        ("accuracy", rid, info.model_id)
    ]
    registered = httpx.get(
        f"{server}/api/2.0/mlflow/model-versions/get", params={"name": "churn", "version": "1"}
    ).json()["model_version"]
    assert registered["model_id"] == info.model_id and registered["tags"] == []
    assert '"version": "1"' in model.tags["mlflow.modelVersions"]
    # the run shows the model it produced, and its metric once (not once more per model)
    run = client.get_run(rid)
    assert [o.model_id for o in run.outputs.model_outputs] == [info.model_id]
    assert len(client.get_metric_history(rid, "accuracy")) == 1

    mv2 = mlflow.register_model(f"runs:/{rid}/model", "churn")
    assert (mv2.version, mv2.run_id) == ("2", rid)
    client.set_registered_model_alias("churn", "champion", mv2.version)

    expected = clf.predict(X)
    pyfunc = mlflow.pyfunc.load_model("models:/churn@champion")
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(X)), expected)
    sk = mlflow.sklearn.load_model("models:/churn@champion")
    np.testing.assert_array_equal(sk.predict(X), expected)
    np.testing.assert_array_equal(
        mlflow.sklearn.load_model(f"models:/{info.model_id}").predict(X), expected
    )

    # loopstack's registry holds ordinary versions: every file's digest, the run, the flavor
    files = _manifest(f"{exp_id}/models/{info.model_id}/artifacts")
    assert {"MLmodel", "model.skops", "input_example.json"} <= set(files)  # skops by default
    for v in registry().search_model_versions(name="churn"):
        assert v.files == files and v.run_id == rid
        assert v.source == f"{exp_id}/models/{info.model_id}/artifacts"
        assert v.flavor == "mlflow.sklearn"
        assert v.signature == {}  # a tensor input has no column form in loopstack

    loaded = ls.load_model("models:/churn@champion")
    np.testing.assert_array_equal(loaded.predict(X), expected)


def test_ls_load_model_refuses_a_tampered_mlflow_file(server: str, tmp_path: Path) -> None:
    _, info, _ = _log_sklearn(registered_model_name="churn", **FAST)
    MlflowClient().set_registered_model_alias("churn", "champion", 1)
    exp_id = mlflow.get_logged_model(info.model_id).experiment_id
    pkl = f"{exp_id}/models/{info.model_id}/artifacts/model.pkl"
    forged = tmp_path / "model.pkl"
    forged.write_bytes(b"not the registered model")
    open_stores().artifacts.log_file(forged, pkl, actor="mallory")  # after registration

    with pytest.raises(ArtifactCorrupted) as refused:
        ls.load_model("models:/churn@champion")
    assert "model.pkl" in refused.value.message
    assert hashlib.sha256(b"not the registered model").hexdigest() in refused.value.message


def test_search_logged_models_filters_and_orders(server: str) -> None:
    X, y = load_iris(return_X_y=True)
    exp_id = mlflow.set_experiment("iris").experiment_id
    ids = {}
    for c in (0.01, 1.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=1000).fit(X, y)
        with mlflow.start_run():
            mlflow.log_param("C", c)
            mlflow.log_metric("accuracy", float(clf.score(X, y)))
            ids[c] = mlflow.sklearn.log_model(clf, name=f"iris-{c}", **FAST).model_id

    found = mlflow.search_logged_models(
        experiment_ids=[exp_id],
        filter_string="metrics.accuracy > 0.5 AND params.C != '0.01'",
        order_by=[{"field_name": "metrics.accuracy", "ascending": False}],
        output_format="list",
    )
    assert [m.model_id for m in found] == [ids[100.0], ids[1.0]]
    newest_first = mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list")
    assert [m.model_id for m in newest_first] == [ids[100.0], ids[1.0], ids[0.01]]
    by_name = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string="name = 'iris-1.0'", output_format="list"
    )
    assert [m.model_id for m in by_name] == [ids[1.0]]
    page = MlflowClient().search_logged_models([exp_id], max_results=2)
    assert len(page) == 2 and page.token
    rest = MlflowClient().search_logged_models([exp_id], max_results=2, page_token=page.token)
    assert [m.model_id for m in rest] == [ids[0.01]] and not rest.token
    frame = mlflow.search_logged_models(experiment_ids=[exp_id], filter_string="name LIKE 'iris-%'")
    assert len(frame) == 3


def test_xgboost_model_through_mlflow_xgboost(server: str) -> None:
    xgboost = pytest.importorskip("xgboost")
    X, y = _data()
    clf = xgboost.XGBClassifier(n_estimators=8, max_depth=3, random_state=0).fit(X, y)
    mlflow.set_experiment("xgb")
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(
            clf,
            name="model",
            input_example=X[:5],
            registered_model_name="churn-xgb",
            pip_requirements=["xgboost"],
        )
    MlflowClient().set_registered_model_alias("churn-xgb", "champion", 1)
    expected = clf.predict(X)
    np.testing.assert_array_equal(
        mlflow.xgboost.load_model("models:/churn-xgb@champion").predict(X), expected
    )
    pyfunc = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(X)), expected)
    version = registry().get_model_version("churn-xgb", 1)
    assert version.flavor == "mlflow.xgboost" and "model.ubj" in version.files
    np.testing.assert_array_equal(ls.load_model("models:/churn-xgb@champion").predict(X), expected)


def test_custom_pythonmodel(server: str) -> None:
    class Doubler(mlflow.pyfunc.PythonModel):  # type hints would make mlflow warn
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input * 2

    mlflow.set_experiment("custom")
    X = np.arange(6, dtype="float64").reshape(3, 2)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="doubler",
            python_model=Doubler(),
            registered_model_name="doubler",
            pip_requirements=["cloudpickle"],
        )
    MlflowClient().set_registered_model_alias("doubler", "champion", 1)
    loaded = mlflow.pyfunc.load_model("models:/doubler@champion")
    np.testing.assert_array_equal(np.asarray(loaded.predict(X)), X * 2)
    assert mlflow.get_logged_model(info.model_id).status == LoggedModelStatus.READY
    assert registry().get_model_version("doubler", 1).flavor == "mlflow.python_function"


def test_logged_model_rest_errors_in_mlflow_shape(server: str) -> None:
    api = f"{server}/api/2.0/mlflow"
    exp_id = mlflow.set_experiment("rest").experiment_id
    with httpx.Client(timeout=30) as http:
        missing = http.get(f"{api}/logged-models/m-{'0' * 32}")
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

        bad = http.post(
            f"{api}/logged-models/search",
            json={"experiment_ids": [exp_id], "filter": "colour = 'red'"},
        )
        assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        bad_order = http.post(
            f"{api}/logged-models/search",
            json={"experiment_ids": [exp_id], "order_by": [{"field_name": "params.C"}]},
        )
        assert bad_order.status_code == 400
        assert bad_order.json()["error_code"] == "INVALID_PARAMETER_VALUE"

        created = http.post(
            f"{api}/logged-models",
            json={"experiment_id": exp_id, "name": "raw", "tags": [{"key": "k", "value": "v"}]},
        )
        assert created.status_code == 200
        info = created.json()["model"]["info"]
        mid = info["model_id"]
        assert info["status"] == "LOGGED_MODEL_PENDING"
        assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/models/{mid}/artifacts"
        bad_status = http.patch(f"{api}/logged-models/{mid}", json={"status": "DONE"})
        assert bad_status.status_code == 400
        ready = http.patch(
            f"{api}/logged-models/{mid}", json={"model_id": mid, "status": "LOGGED_MODEL_READY"}
        )
        assert ready.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
        assert http.delete(f"{api}/logged-models/{mid}/tags/k").status_code == 200
        no_tag = http.delete(f"{api}/logged-models/{mid}/tags/k")
        assert no_tag.status_code == 404
        assert no_tag.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert http.delete(f"{api}/logged-models/{mid}").status_code == 200
        assert http.get(f"{api}/logged-models/{mid}").status_code == 404
        kept = http.get(f"{api}/logged-models/{mid}", params={"allow_deleted": "true"})
        assert kept.status_code == 200
        no_exp = http.post(f"{api}/logged-models", json={"experiment_id": "999999"})
        assert no_exp.status_code == 404


def test_runs_link_models_and_model_metrics_over_rest(server: str) -> None:
    api = f"{server}/api/2.0/mlflow"
    exp_id = mlflow.set_experiment("links").experiment_id
    rid = mlflow.start_run().info.run_id  # left running (the fixture ends it)
    with httpx.Client(timeout=30) as http:
        made = http.post(
            f"{api}/logged-models",
            json={"experiment_id": exp_id, "name": "m", "source_run_id": rid, "model_type": "t"},
        ).json()["model"]["info"]
        mid = made["model_id"]
        assert (made["source_run_id"], made["model_type"]) == (rid, "t")
        assert (
            http.post(
                f"{api}/runs/outputs",
                json={"run_id": rid, "models": [{"model_id": mid, "step": 3}]},
            ).json()
            == {}
        )
        assert (
            http.post(
                f"{api}/runs/log-inputs", json={"run_id": rid, "models": [{"model_id": mid}]}
            ).json()
            == {}
        )
        point = {"run_id": rid, "key": "auc", "value": 0.8, "timestamp": 5, "step": 1}
        on_model = {**point, "model_id": mid, "dataset_name": "holdout", "dataset_digest": "d1"}
        assert http.post(f"{api}/runs/log-metric", json=on_model).status_code == 200
        got = http.get(f"{api}/runs/get", params={"run_id": rid}).json()["run"]
        assert got["outputs"] == {"model_outputs": [{"model_id": mid, "step": 3}]}
        assert got["inputs"]["model_inputs"] == [{"model_id": mid}]
        assert [m["key"] for m in got["data"]["metrics"]] == ["auc"]
        metrics = http.get(f"{api}/logged-models/{mid}").json()["model"]["data"]["metrics"]
        assert metrics == [
            {**point, "model_id": mid, "dataset_name": "holdout", "dataset_digest": "d1"}
        ]

        def on(dataset: str) -> list[str]:
            found = http.post(
                f"{api}/logged-models/search",
                json={
                    "experiment_ids": [exp_id],
                    "filter": "metrics.auc >= 0.8",
                    "datasets": [{"dataset_name": dataset}],
                },
            ).json()
            return [m["info"]["model_id"] for m in found.get("models", [])]

        assert (on("holdout"), on("train")) == ([mid], [])
        listed = http.get(f"{api}/logged-models/{mid}/artifacts/directories").json()
        assert listed["root_uri"] == made["artifact_uri"]
        unknown_run = http.post(
            f"{api}/logged-models", json={"experiment_id": exp_id, "source_run_id": "f" * 32}
        )
        assert unknown_run.status_code == 404
        assert unknown_run.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_diverging_model_metric_is_stored_and_rendered_as_mlflow_does(server: str) -> None:
    """NaN and infinite values logged with a model_id: stored on both databases' terms and
    rendered as MLflow's JSON renders them (``"NaN"``, ``"Infinity"``), never a 500."""
    base = f"{server}/api/2.0/mlflow"
    exp = httpx.post(f"{base}/experiments/create", json={"name": "diverging"}).json()
    rid = httpx.post(f"{base}/runs/create", json={"experiment_id": exp["experiment_id"]}).json()[
        "run"
    ]["info"]["run_id"]
    created = httpx.post(
        f"{base}/logged-models",
        json={"experiment_id": exp["experiment_id"], "name": "m", "source_run_id": rid},
    ).json()
    model_id = created["model"]["info"]["model_id"]
    for step, value in enumerate(["NaN", "Infinity"]):
        point = {"run_id": rid, "key": "loss", "value": value, "timestamp": 1, "step": step}
        resp = httpx.post(f"{base}/runs/log-metric", json={**point, "model_id": model_id})
        assert resp.status_code == 200, resp.text
    got = httpx.get(f"{base}/logged-models/{model_id}").json()["model"]["data"]["metrics"]
    assert [(m["step"], m["value"]) for m in got] == [(0, "NaN"), (1, "Infinity")]
    model = mlflow.get_logged_model(model_id)
    values = sorted((m.step, m.value) for m in model.metrics)
    assert math.isnan(values[0][1]) and values[1][1] == math.inf
