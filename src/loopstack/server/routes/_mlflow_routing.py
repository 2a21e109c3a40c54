"""Every MLflow route is served twice: under the REST API and under the UI's ajax prefix."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

__all__ = ["MLFLOW_PREFIXES", "mlflow_route"]

MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")


def mlflow_route(router: APIRouter) -> Callable[..., Callable[[Callable], Callable]]:
    """A decorator factory: ``@route("POST", "/runs/create", "mlflow_runs_create")``.

    The ajax twin is named ``<name>_ajax``; both share one entry in the role table.
    """

    def route(method: str, path: str, name: str, **_: object) -> Callable[[Callable], Callable]:
        def register(fn: Callable) -> Callable:
            for prefix in MLFLOW_PREFIXES:
                route_name = name if prefix == MLFLOW_PREFIXES[0] else f"{name}_ajax"
                router.add_api_route(prefix + path, fn, methods=[method], name=route_name)
            return fn

        return register

    return route
