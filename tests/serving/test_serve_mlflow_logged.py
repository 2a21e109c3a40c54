"""A model logged by the real mlflow client (against a loopstack tracking server) is
served like any other: resolved through the registry, its files checked, answered over
the Open Inference Protocol by tritonclient and by the JSON route."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")
httpclient = pytest.importorskip("tritonclient.http")

from sklearn.datasets import make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from loopstack.server import create_serving_app  # noqa: E402
from loopstack.serving import EndpointSpec, ServingRuntime  # noqa: E402
from tests.conftest import ThreadedServer  # noqa: E402
from tests.server.conftest import mlflow_uri  # noqa: E402, F401 - the fixture

pytestmark = [
    pytest.mark.mlflow,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
#: no requirement inference, no skops (which imports torch): the fast path
FAST = {"pip_requirements": ["scikit-learn", "cloudpickle"], "serialization_format": "cloudpickle"}


def test_an_mlflow_logged_classifier_is_served(mlflow_uri: str) -> None:  # noqa: F811
    X, y = make_classification(n_samples=120, n_features=4, random_state=3)
    clf = LogisticRegression(max_iter=300).fit(X, y)
    mlflow.set_experiment("served-by-loopstack")
    with mlflow.start_run():
        mlflow.sklearn.log_model(clf, name="model", registered_model_name="mlf", **FAST)
    mlflow.MlflowClient().set_registered_model_alias("mlf", "champion", "1")

    runtime = ServingRuntime([EndpointSpec("mlf", "models:/mlf@champion")])
    runtime.load_all()
    assert runtime.ready, runtime.get("mlf").error
    with ThreadedServer(create_serving_app(runtime, start=False)) as server:
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        assert client.is_model_ready("mlf")
        meta = client.get_model_metadata("mlf")
        assert meta["versions"] == ["1"] and meta["platform"] == "mlflow.sklearn"
        tensor = httpclient.InferInput("input-0", [5, 4], "FP64")
        tensor.set_data_from_numpy(X[:5], binary_data=True)
        result = client.infer("mlf", [tensor])
        np.testing.assert_array_equal(result.as_numpy("predict"), clf.predict(X[:5]))
        np.testing.assert_allclose(
            result.as_numpy("predict_proba").reshape(5, 2), clf.predict_proba(X[:5])
        )
        answer = httpx.post(
            f"{server.url}/endpoints/mlf/predict", json={"instances": X[:3].tolist()}
        ).json()
        assert answer["predictions"] == clf.predict(X[:3]).tolist()
        assert answer["model_version"] == "1"
