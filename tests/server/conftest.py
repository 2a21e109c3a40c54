"""Fixtures shared by the server's tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from loopstack.server import create_app
from tests.conftest import ThreadedServer


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """An HTTP client for the app served by uvicorn in a thread, over this test's home."""
    with (
        ThreadedServer(create_app()) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def mlflow_uri(live_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The live server as the MLflow client's tracking URI, with mlflow's globals reset after."""
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # set_experiment writes it
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    previous = tracking_utils._tracking_uri
    mlflow.set_tracking_uri(live_server)
    try:
        yield live_server
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
