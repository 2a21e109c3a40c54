"""One fitted model per flavor variant, with the original model's own predictions.

Every framework is imported inside its builder (skipping when absent), so
collecting the tests imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest


@dataclass
class Case:
    flavor: str
    model: Any
    sample: Any  # passed as sample_input
    held_out: Any  # rows the model never saw
    expected: np.ndarray  # the original model's predict on held_out
    expected_proba: np.ndarray | None
    model_file: str  # the file the flavor writes the model to
    tabular: bool  # a column signature (else an array signature)


@cache
def iris() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True, as_frame=True)
    return tuple(train_test_split(x, y, test_size=0.3, random_state=0, stratify=y))  # type: ignore[return-value]


@cache
def diabetes() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    return tuple(train_test_split(x, y, test_size=0.3, random_state=0))  # type: ignore[return-value]


@cache
def cancer() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    x = x.iloc[:, :6]  # a few columns keep it quick
    return tuple(train_test_split(x, y, test_size=0.3, random_state=0, stratify=y))  # type: ignore[return-value]


def _tabular(flavor: str, model: Any, data: Any, file: str, proba: bool) -> Case:
    x_train, x_test, _, _ = data
    return Case(
        flavor=flavor,
        model=model,
        sample=x_train.head(10),
        held_out=x_test,
        expected=np.asarray(model.predict(x_test)),
        expected_proba=np.asarray(model.predict_proba(x_test)) if proba else None,
        model_file=file,
        tabular=True,
    )


def sklearn_logistic() -> Case:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    data = iris()
    model = LogisticRegression(max_iter=1000).fit(data[0], data[2])
    return _tabular("sklearn", model, data, "model.pkl", proba=True)


def sklearn_forest_pipeline() -> Case:
    pytest.importorskip("sklearn")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = iris()
    model = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1)
    ).fit(data[0], data[2])
    return _tabular("sklearn", model, data, "model.pkl", proba=True)


def sklearn_ridge() -> Case:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge

    data = diabetes()
    return _tabular("sklearn", Ridge().fit(data[0], data[2]), data, "model.pkl", proba=False)


def xgboost_classifier() -> Case:
    xgboost = pytest.importorskip("xgboost")
    data = iris()
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0, n_jobs=1)
    model.fit(data[0], data[2])
    return _tabular("xgboost", model, data, "model.json", proba=True)


def xgboost_regressor() -> Case:
    xgboost = pytest.importorskip("xgboost")
    data = diabetes()
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3, random_state=0, n_jobs=1)
    model.fit(data[0], data[2])
    return _tabular("xgboost", model, data, "model.json", proba=False)


def xgboost_booster() -> Case:
    xgboost = pytest.importorskip("xgboost")
    x_train, x_test, y_train, _ = diabetes()
    booster = xgboost.train(
        {"max_depth": 3, "nthread": 1, "seed": 0},
        xgboost.DMatrix(x_train, y_train),
        num_boost_round=20,
    )
    return Case(
        flavor="xgboost",
        model=booster,
        sample=x_train.head(10),
        held_out=x_test,
        expected=booster.predict(xgboost.DMatrix(x_test)),
        expected_proba=None,
        model_file="model.json",
        tabular=True,
    )


def lightgbm_classifier() -> Case:
    lightgbm = pytest.importorskip("lightgbm")
    data = iris()
    model = lightgbm.LGBMClassifier(
        n_estimators=20, min_child_samples=5, random_state=0, n_jobs=1, verbose=-1
    ).fit(data[0], data[2])
    return _tabular("lightgbm", model, data, "model.txt", proba=True)


def lightgbm_binary() -> Case:
    lightgbm = pytest.importorskip("lightgbm")
    data = cancer()
    model = lightgbm.LGBMClassifier(n_estimators=20, random_state=0, n_jobs=1, verbose=-1).fit(
        data[0], data[2]
    )
    return _tabular("lightgbm", model, data, "model.txt", proba=True)


def lightgbm_regressor() -> Case:
    lightgbm = pytest.importorskip("lightgbm")
    data = diabetes()
    model = lightgbm.LGBMRegressor(n_estimators=20, random_state=0, n_jobs=1, verbose=-1).fit(
        data[0], data[2]
    )
    return _tabular("lightgbm", model, data, "model.txt", proba=False)


def lightgbm_booster() -> Case:
    lightgbm = pytest.importorskip("lightgbm")
    x_train, x_test, y_train, _ = diabetes()
    booster = lightgbm.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1, "seed": 0},
        lightgbm.Dataset(x_train, y_train),
        num_boost_round=20,
    )
    return Case(
        flavor="lightgbm",
        model=booster,
        sample=x_train.head(10),
        held_out=x_test,
        expected=np.asarray(booster.predict(x_test)),
        expected_proba=None,
        model_file="model.txt",
        tabular=True,
    )


def _torch_case(model: Any, module: Any, file: str) -> Case:
    torch = pytest.importorskip("torch")
    x_train, x_test, _, _ = iris()
    train = x_train.to_numpy(dtype=np.float32, copy=True)
    test = x_test.to_numpy(dtype=np.float32, copy=True)
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(test)).numpy()
    return Case(
        flavor="pytorch",
        model=model,
        sample=train[:10],
        held_out=test,
        expected=expected,
        expected_proba=None,
        model_file=file,
        tabular=False,
    )


def torch_script() -> Case:
    torch = pytest.importorskip("torch")
    from .torch_nets import TinyNet

    torch.manual_seed(0)
    net = TinyNet(4, 3)
    return _torch_case(net, net, "model.pt")


def torch_trace() -> Case:
    torch = pytest.importorskip("torch")
    from .torch_nets import VarargsNet

    torch.manual_seed(0)
    net = VarargsNet(4)
    return _torch_case(net, net, "model.pt")


def torch_state_dict() -> Case:
    torch = pytest.importorskip("torch")
    from loopstack.registry.flavors import TorchStateDict

    from .torch_nets import TinyNet

    torch.manual_seed(0)
    net = TinyNet(4, 3, hidden=5)
    wrapped = TorchStateDict(net, {"n_in": 4, "n_out": 3, "hidden": 5})
    return _torch_case(wrapped, net, "state_dict.pt")


def onnx_model() -> Case:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x_train, x_test, y_train, _ = iris()
    train = x_train.to_numpy(dtype=np.float32)
    test = x_test.to_numpy(dtype=np.float32)
    clf = LogisticRegression(max_iter=1000).fit(train, y_train)
    proto = to_onnx(clf, train[:1], options={id(clf): {"zipmap": False}})
    return Case(
        flavor="onnx",
        model=proto,
        sample=train[:10],
        held_out=test,
        expected=clf.predict(test),
        expected_proba=clf.predict_proba(test),
        model_file="model.onnx",
        tabular=False,
    )


def pyfunc_model() -> Case:
    from .flavor_models import TripwireModel

    x_train, x_test, _, _ = diabetes()
    model = TripwireModel(np.linspace(-1.0, 1.0, x_train.shape[1]), intercept=150.0)
    return _tabular("pyfunc", model, (x_train, x_test, None, None), "model.pkl", proba=False)


def pyfunc_scoring() -> Case:
    from .flavor_models import ScoringModel

    x_train, x_test, _, _ = cancer()
    model = ScoringModel(np.array([0.5, -0.1, 0.2, 0.0, -3.0, 1.0]), intercept=-5.0)
    return _tabular("pyfunc", model, (x_train, x_test, None, None), "model.pkl", proba=True)


CASES: dict[str, Callable[[], Case]] = {
    f.__name__: f
    for f in (
        sklearn_logistic,
        sklearn_forest_pipeline,
        sklearn_ridge,
        xgboost_classifier,
        xgboost_regressor,
        xgboost_booster,
        lightgbm_classifier,
        lightgbm_binary,
        lightgbm_regressor,
        lightgbm_booster,
        torch_script,
        torch_trace,
        torch_state_dict,
        onnx_model,
        pyfunc_model,
        pyfunc_scoring,
    )
}

_BUILT: dict[str, Case] = {}


def build(name: str) -> Case:
    """The case called ``name``, fitted once per test session."""
    if name not in _BUILT:
        _BUILT[name] = CASES[name]()
    return _BUILT[name]


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Invert one byte of ``path`` (the middle one unless ``offset`` says)."""
    data = bytearray(path.read_bytes())
    index = len(data) // 2 if offset is None else offset
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))
