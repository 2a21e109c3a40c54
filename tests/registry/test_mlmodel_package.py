"""A loopstack package is also an MLflow model: the real mlflow client loads it from disk.

Every flavor variant gets an ``MLmodel`` (listed in the manifest with its sha256,
like every file) whose ``python_function`` entry predicts as ``load_package``
does: MLflow's own loader where it reads the files (scikit-learn, XGBoost,
LightGBM boosters and regressors), loopstack's loader module elsewhere. Packages
written before the ``MLmodel`` existed still load with loopstack.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from loopstack.errors import ArtifactCorrupted
from loopstack.registry.flavors import MANIFEST_NAME, load_package, package_model

from .flavors.flavor_cases import CASES, build, flip_byte, iris

pytest.importorskip("mlflow")
import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
from mlflow.models import Model  # noqa: E402

pytestmark = pytest.mark.mlflow

MLFLOW_FILES = ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt")
# Which loader MLflow's python_function entry names for each variant.
NATIVE = {
    "sklearn_logistic": "mlflow.sklearn",
    "sklearn_forest_pipeline": "mlflow.sklearn",
    "sklearn_ridge": "mlflow.sklearn",
    "xgboost_classifier": "mlflow.xgboost",
    "xgboost_regressor": "mlflow.xgboost",
    "xgboost_booster": "mlflow.xgboost",
    "lightgbm_regressor": "mlflow.lightgbm",
    "lightgbm_booster": "mlflow.lightgbm",
}
LOOPSTACK_LOADER = "loopstack.registry.flavors.mlflow_pyfunc"


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.mark.parametrize("case_name", list(CASES))
def test_mlflow_pyfunc_predicts_as_loopstack_does(case_name: str, tmp_path: Path) -> None:
    case = build(case_name)
    directory = tmp_path / "model"
    package = package_model(case.model, directory, sample_input=case.sample)

    for name in MLFLOW_FILES:
        digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        assert package.files[name] == digest
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert {n: manifest["files"][n] for n in MLFLOW_FILES} == {
        n: package.files[n] for n in MLFLOW_FILES
    }

    meta = Model.load(str(directory / "MLmodel"))
    pyfunc_conf = meta.flavors["python_function"]
    assert pyfunc_conf["loader_module"] == NATIVE.get(case_name, LOOPSTACK_LOADER)
    requirements = (directory / "requirements.txt").read_text().split()
    assert set(package.requirements) <= set(requirements)
    if case_name not in NATIVE:
        assert any(r.startswith("loopstack") for r in requirements)

    ours = load_package(directory, expected_files=package.files).predict(case.held_out)
    theirs = np.asarray(mlflow.pyfunc.load_model(str(directory)).predict(case.held_out))
    np.testing.assert_allclose(theirs.reshape(ours.shape), ours, rtol=1e-6)
    np.testing.assert_allclose(ours, case.expected, rtol=1e-6)


def test_mlflow_column_signature_names_the_inputs(tmp_path: Path) -> None:
    case = build("sklearn_logistic")
    package_model(case.model, tmp_path / "m", sample_input=case.sample)
    signature = Model.load(str(tmp_path / "m" / "MLmodel")).signature
    assert signature is not None
    assert signature.inputs.input_names() == list(case.sample.columns)
    assert {t.name for t in signature.inputs.input_types()} == {"double"}


@pytest.mark.parametrize(
    ("case_name", "loader"),
    [
        ("sklearn_forest_pipeline", "sklearn"),
        ("xgboost_classifier", "xgboost"),
        ("xgboost_booster", "xgboost"),
    ],
)
def test_native_mlflow_flavor_gives_the_framework_object(
    case_name: str, loader: str, tmp_path: Path
) -> None:
    case = build(case_name)
    package_model(case.model, tmp_path / "m", sample_input=case.sample)
    __import__(f"mlflow.{loader}")
    native = getattr(mlflow, loader).load_model(str(tmp_path / "m"))
    assert type(native) is type(case.model)
    if loader == "xgboost" and case_name == "xgboost_booster":
        import xgboost

        predictions = native.predict(xgboost.DMatrix(case.held_out))
    else:
        predictions = native.predict(case.held_out)
    np.testing.assert_allclose(predictions, case.expected, rtol=1e-6)


def test_loopstack_loader_checks_digests_before_unpickling(tmp_path: Path) -> None:
    case = build("pyfunc_model")
    directory = tmp_path / "m"
    package_model(case.model, directory, sample_input=case.sample)
    flip_byte(directory / "model.pkl")
    with pytest.raises(ArtifactCorrupted, match="'model.pkl' is corrupted"):
        mlflow.pyfunc.load_model(str(directory))


def test_an_edited_mlmodel_is_refused_by_loopstack(tmp_path: Path) -> None:
    case = build("sklearn_ridge")
    directory = tmp_path / "m"
    package = package_model(case.model, directory, sample_input=case.sample)
    mlmodel = directory / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("mlflow.sklearn", "evil.loader"))
    with pytest.raises(ArtifactCorrupted, match="'MLmodel' is corrupted"):
        load_package(directory, expected_files=package.files)


def test_a_package_from_before_mlmodel_still_loads(tmp_path: Path) -> None:
    """Old sklearn packages hold a joblib ``model.joblib`` and no MLflow files."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    x_train, x_test, y_train, _ = iris()
    model = LogisticRegression(max_iter=500).fit(x_train, y_train)
    directory = tmp_path / "old"
    directory.mkdir()
    joblib.dump(model, directory / "model.joblib")
    digest = hashlib.sha256((directory / "model.joblib").read_bytes()).hexdigest()
    manifest = {
        "format_version": 1,
        "flavor": "sklearn",
        "flavor_metadata": {
            "serializer": "joblib",
            "file": "model.joblib",
            "estimator": "sklearn.linear_model._logistic.LogisticRegression",
        },
        "signature": None,
        "requirements": [],
        "files": {"model.joblib": digest},
        "has_proba": True,
        "onnx": None,
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    loaded = load_package(directory, expected_files={"model.joblib": digest})
    np.testing.assert_array_equal(loaded.predict(x_test), model.predict(x_test))


def test_the_same_model_packages_to_the_same_mlflow_files(tmp_path: Path) -> None:
    case = build("xgboost_regressor")
    first = package_model(case.model, tmp_path / "a", sample_input=case.sample)
    second = package_model(case.model, tmp_path / "b", sample_input=case.sample)
    assert {n: first.files[n] for n in MLFLOW_FILES} == {n: second.files[n] for n in MLFLOW_FILES}


def test_loopstack_loader_tolerates_only_what_mlflow_adds(tmp_path: Path) -> None:
    case = build("lightgbm_classifier")
    directory = tmp_path / "m"
    package_model(case.model, directory, sample_input=case.sample)
    # What the MLflow client writes beside a registered model it downloads.
    (directory / "registered_model_meta").write_text("model_name: churn\nmodel_version: '1'\n")
    predictions = mlflow.pyfunc.load_model(str(directory)).predict(case.held_out)
    np.testing.assert_array_equal(np.asarray(predictions), case.expected)
    (directory / "sitecustomize.py").write_text("print('injected')\n")
    with pytest.raises(ArtifactCorrupted, match="'sitecustomize.py' is not among"):
        mlflow.pyfunc.load_model(str(directory))
