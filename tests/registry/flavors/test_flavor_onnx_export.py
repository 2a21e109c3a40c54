"""ONNX: the scikit-learn fast path (conversion, parity, prefer_onnx) and the onnx flavor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loopstack.errors import Invalid
from loopstack.registry.flavors import MANIFEST_NAME, load_package, package_model

from .flavor_cases import build

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("case_name", ["sklearn_logistic", "sklearn_forest_pipeline"])
def test_onnx_parity_is_recorded_and_small(case_name: str, tmp_path: Path) -> None:
    case = build(case_name)
    directory = tmp_path / "model"
    package = package_model(case.model, directory, sample_input=case.held_out, onnx=True)
    assert package.onnx_max_abs_diff is not None and package.onnx_max_abs_diff < 1e-4
    assert "model.onnx" in package.files
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert manifest["onnx"]["max_abs_diff"] == package.onnx_max_abs_diff
    assert manifest["onnx"]["compared"] == "predict_proba"
    assert manifest["onnx"]["requirements"][0].startswith("onnxruntime==")

    fast = load_package(directory, expected_files=package.files, prefer_onnx=True)
    assert fast.uses_onnx and fast.has_proba
    np.testing.assert_array_equal(fast.predict(case.held_out), case.expected)
    np.testing.assert_allclose(fast.predict_proba(case.held_out), case.expected_proba, atol=1e-4)
    native = load_package(directory, expected_files=package.files)
    assert not native.uses_onnx


def test_onnx_regressor_output_has_the_native_shape(tmp_path: Path) -> None:
    case = build("sklearn_ridge")
    package = package_model(case.model, tmp_path / "m", sample_input=case.sample, onnx=True)
    assert package.onnx is not None and package.onnx["compared"] == "predict"
    fast = load_package(tmp_path / "m", prefer_onnx=True)
    assert not fast.has_proba
    predictions = fast.predict(case.held_out)
    assert predictions.shape == case.expected.shape
    np.testing.assert_allclose(predictions, case.expected, rtol=1e-4)


def test_prefer_onnx_without_onnx_copy_uses_the_native_model(tmp_path: Path) -> None:
    case = build("sklearn_logistic")
    package_model(case.model, tmp_path / "m", sample_input=case.sample)
    assert not load_package(tmp_path / "m", prefer_onnx=True).uses_onnx


def test_onnx_needs_sklearn_and_a_sample(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="onnx=True needs sample_input"):
        package_model(build("sklearn_logistic").model, tmp_path / "a", onnx=True)
    case = build("pyfunc_model")
    with pytest.raises(Invalid, match="onnx=True converts scikit-learn models; got .*'pyfunc'"):
        package_model(case.model, tmp_path / "b", sample_input=case.sample, onnx=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_onnx_flavor_from_a_file_path(tmp_path: Path) -> None:
    case = build("onnx_model")
    source = tmp_path / "exported.onnx"
    source.write_bytes(case.model.SerializeToString())
    package = package_model(str(source), tmp_path / "m", sample_input=case.sample)
    assert package.flavor == "onnx"
    assert package.requirements[0].startswith("onnxruntime==")
    loaded = load_package(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(case.held_out), case.expected)


def test_mixed_columns_become_one_onnx_input_each(tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=200),
            "n": rng.integers(0, 5, 200),
            "city": rng.choice(["a", "b", "c"], 200),
        }
    )
    labels = np.where(frame["x"] + (frame["city"] == "a") > 0.5, "yes", "no")
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [("num", StandardScaler(), ["x", "n"]), ("cat", OneHotEncoder(), ["city"])]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(frame, labels)
    package = package_model(model, tmp_path / "m", sample_input=frame.head(50), onnx=True)
    assert package.onnx_max_abs_diff is not None and package.onnx_max_abs_diff < 1e-6
    fast = load_package(tmp_path / "m", prefer_onnx=True)
    np.testing.assert_array_equal(fast.predict(frame), model.predict(frame))
