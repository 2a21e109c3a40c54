"""Fixtures of the serving tests: real models logged with loopstack, a live serving app."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

import loopstack as ls
from loopstack.registry import registry
from loopstack.server import create_serving_app
from loopstack.serving import EndpointSpec, ServingRuntime
from tests.conftest import ThreadedServer


@dataclass
class Served:
    """The serving app's URL, its runtime, and the models behind its endpoints."""

    url: str
    runtime: ServingRuntime
    frame: pd.DataFrame  # iris features (the classifier's columns)
    classifier: Any  # "iris": columns signature, labels and probabilities
    regressor: Any  # "reg": a float32 array signature


def log_models() -> tuple[pd.DataFrame, Any, Any]:
    """An iris classifier (alias champion) and an array regressor, registered."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = LogisticRegression(max_iter=300).fit(X, y)
    arr = X.to_numpy(dtype="float32")[:, :3]
    reg = LinearRegression().fit(arr, X.to_numpy()[:, 3])
    with ls.start_run(experiment="serving") as run:
        run.log_model(clf, name="iris", artifact_path="iris", sample_input=X.head(5))
        run.log_model(reg, name="reg", artifact_path="reg", sample_input=arr[:5])
    registry().set_alias("iris", "champion", 1)
    return X, clf, reg


@pytest.fixture
def served() -> Iterator[Served]:
    """The serving app over both models, loaded and warm, served by uvicorn in a thread."""
    X, clf, reg = log_models()
    runtime = ServingRuntime(
        [EndpointSpec("iris", "models:/iris@champion"), EndpointSpec("reg", "models:/reg/1")]
    )
    runtime.load_all()
    assert runtime.ready, [e.error for e in runtime.endpoints]
    with ThreadedServer(create_serving_app(runtime, start=False)) as server:
        yield Served(server.url, runtime, X, clf, reg)


def rows(X: pd.DataFrame, n: int = 5) -> np.ndarray:
    return X.head(n).to_numpy()


def eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until ``check()`` is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)
