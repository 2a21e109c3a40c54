"""Property-based fuzzing of the serving app's OpenAPI spec (schemathesis), as
tests/server/test_fuzz_api.py does for the tracking server.

The serving app over a classifier (columns signature), an array regressor and a stored
deployment, with auth off and on (a viewer's token, and no token): random and invalid
paths and bodies for the predict, infer, metadata and readiness routes. Every answer
must be a non-5xx whose status and content type the spec declares. Bounded: a fixed
number of examples per operation, no shrinking, a pytest timeout as a hang guard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    status_code_conformance,
)

from loopstack import auth
from loopstack.server import create_serving_app
from loopstack.serving import DeploymentSource, EndpointSpec, ServingRuntime, deployments
from loopstack.store import open_stores
from tests.conftest import ThreadedServer
from tests.server import test_fuzz_api as fuzz_api
from tests.server.test_fuzz_api import _config, _failures_of
from tests.serving.conftest import log_models

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
SERVED = ["iris", "reg", "iris-api"]
#: examples per operation and generation mode: the serving spec has 14 operations


@pytest.fixture(params=["auth-off", "viewer", "no-token"])
def api(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, dict[str, str]]]:
    log_models()
    deployments().create("iris-api", "iris/1")
    headers: dict[str, str] = {}
    spec_headers: dict[str, str] = {}
    if request.param != "auth-off":
        db = open_stores().db
        auth.create_token(db, name="root", user="root")
        auth.create_user(db, "viewer", actor="root")
        auth.add_member(db, "default", "viewer", "viewer", actor="root")
        token = auth.create_token(db, name="v", user="viewer", actor="root")[0]
        spec_headers = {"Authorization": f"Bearer {token}"}
        if request.param == "viewer":
            headers = spec_headers
        monkeypatch.setenv("LOOPSTACK_SERVING_AUTH", "on")
    runtime = ServingRuntime(
        [EndpointSpec("iris", "models:/iris@champion"), EndpointSpec("reg", "models:/reg/1")]
    )
    app = create_serving_app(
        runtime, deployments=DeploymentSource(deployments(), ["iris-api"]), rate_limit=0
    )
    assert runtime.wait_ready(60), [e.error for e in runtime.endpoints]
    try:
        with ThreadedServer(app) as server:
            spec = httpx.get(f"{server.url}/openapi.json", headers=spec_headers)
            assert spec.status_code == 200, spec.text
            schema = schemathesis.openapi.from_dict(_aimed(spec.json()), config=_config())
            schema.config.base_url = server.url
            yield schema, headers
    finally:
        app.state.stop_refresh.set()


def _aimed(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with the valid names and versions of the endpoints served here, so that
    positive cases reach the models (random names are all 404s); negative cases still
    send names outside them."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "name":
                    parameter["schema"] = {"type": "string", "enum": SERVED}
                elif parameter["in"] == "path" and parameter["name"] == "version":
                    parameter["schema"] = {"type": "string", "enum": ["1", "2"]}
    return spec


def test_no_input_gets_a_5xx_or_an_undeclared_answer(
    api: tuple[Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    schema, headers = api
    answered: Counter[tuple[str, int]] = Counter()
    call = schemathesis.Case.call

    def counted(case: Any, *args: Any, **kwargs: Any) -> Any:
        response = call(case, *args, **kwargs)
        answered[(case.operation.label, response.status_code)] += 1
        return response

    monkeypatch.setattr(schemathesis.Case, "call", counted)
    monkeypatch.setattr(fuzz_api, "MAX_EXAMPLES", 8)
    secured = "securitySchemes" in schema.raw_schema.get("components", {})
    checks = [*CHECKS, ignored_auth] if secured else CHECKS
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/endpoints/{name}/predict", "/v2/models/{name}/infer"} <= paths, paths
    failures: list[str] = []
    for operation in operations:
        failures += _failures_of(operation, headers, checks)
    print(f"{len(operations)} operations fuzzed, {len(failures)} failing cases")
    print(sorted(answered.items()))
    public = {"GET /health", "GET /metrics", "GET /v2/health/live", "GET /v2/health/ready"}
    reached = {op for (op, status) in answered if status == 200} - public
    if headers or not secured:  # the served models were reached, not only refusals
        assert {"GET /v2/models/{name}", "GET /endpoints/{name}"} <= reached, answered
    else:  # no token: every route but the public ones refused it
        assert {s for (op, s) in answered if op not in public} == {401}, answered
    assert not failures, f"{len(failures)} failing cases:\n" + "\n".join(failures[:60])
