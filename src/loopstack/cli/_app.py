"""The root `loopstack` command; each command group lives in its own module."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from loopstack.errors import LoopstackError


class _Root(TyperGroup):
    """Turns a ``LoopstackError`` from any command into one red line and exit code 1."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click: its Context type is private
        try:
            return super().invoke(ctx)
        except LoopstackError as exc:
            from loopstack.cli._output import fail

            fail(exc.message)


app = typer.Typer(
    name="loopstack",
    cls=_Root,
    no_args_is_help=True,
    add_completion=False,
    help="loopstack: tracking, registry, features, serving and monitoring in one.",
)


@app.command()
def server(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(5000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Run the loopstack server (native REST, MLflow REST API, /health, /metrics)."""
    from loopstack.server import serve

    serve(host=host, port=port, workers=workers)


def _register() -> None:
    # Each module imports only typer at load time, so `loopstack --help` stays fast.
    from loopstack.cli import (
        _audit,
        _data,
        _doctor,
        _experiments,
        _features,
        _models,
        _projects,
        _quickstart,
        _runs,
        _token,
        _users,
    )

    app.add_typer(_experiments.app, name="experiments")
    app.add_typer(_runs.app, name="runs")
    app.add_typer(_models.app, name="models")
    app.add_typer(_features.app, name="features")
    app.add_typer(_audit.app, name="audit")
    app.add_typer(_data.app, name="data")
    app.add_typer(_token.app, name="token")
    app.add_typer(_projects.app, name="projects")
    app.add_typer(_users.app, name="users")
    app.command("doctor")(_doctor.doctor)
    app.command("quickstart")(_quickstart.quickstart)


_register()


def main() -> None:
    app()


from loopstack.cli import _features_online  # noqa: E402, F401 - adds the online commands
