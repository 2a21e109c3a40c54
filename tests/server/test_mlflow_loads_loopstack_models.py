"""One model, two clients: what loopstack logs, the real mlflow client loads from the server.

loopstack logs and registers the model (``ls.start_run`` + ``run.log_model``, into
the live server's own database), the alias is set, and then ``mlflow`` pointed at
the server resolves ``models:/churn@champion`` (alias -> version -> download URI ->
the ``mlflow-artifacts`` proxy) and predicts exactly as ``ls.load_model`` does.
A blob rewritten on the server's disk is never served: both download routes
answer an error in their API's shape before any byte, the mlflow client fails
with an ``MlflowException`` and ``ls.load_model`` with ``ArtifactCorrupted``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import ArtifactCorrupted
from loopstack.registry import registry
from loopstack.store import open_stores
from loopstack.store.artifacts import LocalBlobStore

pytest.importorskip("mlflow")
import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import mlflow.sklearn  # noqa: E402
import mlflow.xgboost  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

pytestmark = pytest.mark.mlflow


def _data() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, _ = train_test_split(
        x.iloc[:, :8], y, test_size=0.3, random_state=0, stratify=y
    )
    return x_train, x_test, y_train


def _sklearn_model(x: pd.DataFrame, y: pd.Series) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)


def _xgboost_model(x: pd.DataFrame, y: pd.Series) -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(x, y)


def _log_with_loopstack(model: Any, name: str, sample: pd.DataFrame) -> tuple[str, dict[str, str]]:
    with ls.start_run(experiment="churn", capture_env=False) as run:
        version = run.log_model(model, name=name, sample_input=sample)
    assert version is not None
    registry().set_alias(name, "champion", version.version)
    return run.run_id, dict(version.files)


@pytest.fixture
def server(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # A refused download is final: no minutes of retrying the 500 MLflow answers DATA_LOSS with.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return mlflow_uri


@pytest.mark.parametrize(
    ("build", "native"),
    [(_sklearn_model, mlflow.sklearn), (_xgboost_model, mlflow.xgboost)],
    ids=["sklearn", "xgboost"],
)
def test_mlflow_loads_what_loopstack_logged(
    server: str, tmp_path: Path, build: Any, native: Any
) -> None:
    x_train, x_test, y_train = _data()
    model = build(x_train, y_train)
    _log_with_loopstack(model, "churn", x_train.head(20))

    expected = ls.load_model("models:/churn@champion").predict(x_test)
    np.testing.assert_array_equal(expected, model.predict(x_test))
    pyfunc = mlflow.pyfunc.load_model("models:/churn@champion")
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(x_test)), expected)
    loaded = native.load_model("models:/churn@champion")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(x_test), expected)
    # The version's own number resolves the same files.
    by_number = mlflow.pyfunc.load_model("models:/churn/1")
    np.testing.assert_array_equal(np.asarray(by_number.predict(x_test)), expected)


def test_a_tampered_blob_is_never_served(server: str, tmp_path: Path) -> None:
    x_train, x_test, y_train = _data()
    run_id, files = _log_with_loopstack(_sklearn_model(x_train, y_train), "churn", x_train)
    assert mlflow.pyfunc.load_model("models:/churn@champion").predict(x_test) is not None

    blobs = open_stores().artifacts.blobs
    assert isinstance(blobs, LocalBlobStore)
    stored = blobs._path(files["model.pkl"])
    original = stored.read_bytes()
    altered = original[:-64] + b"\x00" * 64  # same length: a silent edit of the pickle
    stored.write_bytes(altered)

    dst = tmp_path / "mlflow-dl"
    dst.mkdir()
    with pytest.raises(MlflowException) as refused:
        mlflow.pyfunc.load_model("models:/churn@champion", dst_path=str(dst))
    # MLflow's client retries a 500 (DATA_LOSS's status) and reports the file it could not get.
    assert "model/model.pkl" in str(refused.value)
    assert altered not in [p.read_bytes() for p in dst.rglob("*") if p.is_file()]

    with pytest.raises(ArtifactCorrupted, match=f"expected sha256 {files['model.pkl']}"):
        ls.load_model("models:/churn@champion")

    exp_id = ls.TrackingClient().get_run(run_id).artifact_uri.split("/", 1)[0]
    with httpx.Client(base_url=server, timeout=30) as http:
        proxied = http.get(
            f"/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run_id}/artifacts/model/model.pkl"
        )
        assert proxied.status_code == 500
        assert proxied.json()["error_code"] == "DATA_LOSS"
        assert files["model.pkl"] in proxied.json()["message"]
        native_route = http.get(f"/api/v1/runs/{run_id}/artifacts/model/model.pkl")
        assert native_route.status_code == 500
        assert native_route.json()["error"] == "ArtifactCorrupted"
        # Untouched files of the same package are still served, whole.
        mlmodel = http.get(f"/api/v1/runs/{run_id}/artifacts/model/MLmodel")
        assert mlmodel.status_code == 200
        assert int(mlmodel.headers["content-length"]) == len(mlmodel.content)
        assert b"mlflow.sklearn" in mlmodel.content


def test_mlflow_pyfunc_loads_through_loopstacks_loader(server: str) -> None:
    """A LightGBM classifier has no MLflow loader that predicts labels: loopstack's is named."""
    import lightgbm

    x_train, x_test, y_train = _data()
    model = lightgbm.LGBMClassifier(n_estimators=20, random_state=0, verbose=-1)
    model.fit(x_train, y_train)
    _log_with_loopstack(model, "churn-lgbm", x_train.head(20))

    pyfunc = mlflow.pyfunc.load_model("models:/churn-lgbm@champion")
    assert pyfunc.loader_module == "loopstack.registry.flavors.mlflow_pyfunc"
    expected = ls.load_model("models:/churn-lgbm@champion").predict(x_test)
    np.testing.assert_array_equal(expected, model.predict(x_test))
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(x_test)), expected)
