"""A busy store answers 503 with Retry-After, so clients (HttpClient, mlflow) back off and
retry, under loopstack's routes and MLflow's alike."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from loopstack.errors import LoopstackError, NotFound, Overloaded, StoreUnavailable
from loopstack.server._app import error_response


def _request(path: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": []})


@pytest.mark.parametrize("path", ["/api/v1/runs/r/batch", "/api/2.0/mlflow/runs/log-batch"])
@pytest.mark.parametrize("exc", [Overloaded("busy"), StoreUnavailable("gone")])
def test_a_503_says_when_to_retry(path: str, exc: LoopstackError) -> None:
    response = error_response(_request(path), exc)
    assert response.status_code == 503
    assert float(response.headers["retry-after"]) > 0


def test_other_errors_carry_no_retry_after() -> None:
    response = error_response(_request("/api/2.0/mlflow/runs/get"), NotFound("no run"))
    assert response.status_code == 404
    assert "retry-after" not in response.headers
