"""Which flavor packages a model, and that importing the package imports no framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import loopstack.registry.flavors as flavors
from loopstack.errors import Invalid
from loopstack.registry.flavors import detect_flavor, get_flavor, package_model

from .flavor_cases import build


def test_all_is_sorted_and_complete() -> None:
    assert flavors.__all__ == sorted(flavors.__all__)
    public = {n for n in vars(flavors) if not n.startswith("_") and n != "annotations"}
    assert set(flavors.__all__) == public


def test_importing_the_package_imports_no_framework() -> None:
    frameworks = ["sklearn", "xgboost", "lightgbm", "torch", "onnx", "onnxruntime", "skl2onnx"]
    code = (
        "import sys, loopstack.registry.flavors\n"
        f"print([m for m in {frameworks!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("case_name", "flavor"),
    [
        ("xgboost_classifier", "xgboost"),  # also a sklearn estimator: the specific one wins
        ("xgboost_booster", "xgboost"),
        ("lightgbm_classifier", "lightgbm"),  # likewise
        ("lightgbm_booster", "lightgbm"),
        ("sklearn_forest_pipeline", "sklearn"),
        ("torch_script", "pytorch"),
        ("torch_state_dict", "pytorch"),
        ("onnx_model", "onnx"),
        ("pyfunc_model", "pyfunc"),
    ],
)
def test_most_specific_flavor_wins(case_name: str, flavor: str) -> None:
    assert detect_flavor(build(case_name).model).name == flavor


def test_unknown_flavor_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(
        Invalid,
        match="unknown model flavor 'keras'; expected one of "
        "lightgbm, onnx, pyfunc, pytorch, sklearn, xgboost",
    ):
        package_model(build("sklearn_logistic").model, tmp_path / "m", flavor="keras")
    with pytest.raises(Invalid, match="unknown model flavor"):
        get_flavor("")


def test_named_flavor_must_fit_the_model(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="flavor 'xgboost' cannot package a .*LogisticRegression"):
        package_model(build("sklearn_logistic").model, tmp_path / "m", flavor="xgboost")


def test_pyfunc_can_be_chosen_for_any_model_with_predict(tmp_path: Path) -> None:
    case = build("sklearn_logistic")
    package = package_model(case.model, tmp_path / "m", sample_input=case.sample, flavor="pyfunc")
    assert package.flavor == "pyfunc" and package.has_proba
    assert any(r.startswith("scikit-learn==") for r in package.requirements)
