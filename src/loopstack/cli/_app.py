"""The root `loopstack` command; each command group lives in its own module."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from loopstack.errors import LoopstackError


class _Root(TyperGroup):
    """Turns a ``LoopstackError`` from any command into one red line and exit code 1."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click: its Context type is private
        from typer.exceptions import TyperException

        from loopstack.cli._output import fail
        from loopstack.cli._project import one_invocation

        try:
            with one_invocation():
                return super().invoke(ctx)
        except LoopstackError as exc:
            fail(exc.message)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # usage errors and exits: click prints them
        except Exception as exc:  # noqa: BLE001 - the last line before a traceback
            import os

            if os.environ.get("LOOPSTACK_DEBUG"):
                raise
            fail(f"{unexpected(exc)} (LOOPSTACK_DEBUG=1 shows the traceback)")


def unexpected(exc: Exception) -> str:
    """One line for an error no layer translated: what a user can act on, when it is known."""
    import errno

    import httpx

    if isinstance(exc, httpx.TransportError):
        where = getattr(getattr(exc, "request", None), "url", None)
        return f"cannot reach the server{f' at {where}' if where else ''}: {exc}"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or directory: {exc.filename}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the device"
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return (
        f"unexpected {type(exc).__module__}.{type(exc).__qualname__}: {text[:300]} — "
        "this is a loopstack bug, please report it"
    )


app = typer.Typer(
    name="loopstack",
    cls=_Root,
    no_args_is_help=True,
    add_completion=False,
    help="loopstack: tracking, registry, features, serving and monitoring in one.",
)


def _version(value: bool) -> None:
    if value:
        from loopstack import __version__

        typer.echo(f"loopstack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress lines on long work (as when piped)."
    ),
) -> None:
    """loopstack: tracking, registry, features, serving and monitoring in one."""
    if quiet:
        import os

        os.environ["LOOPSTACK_QUIET"] = "1"  # read by loopstack._progress, here and in children


def _register() -> None:
    # Each module imports only typer at load time, so `loopstack --help` stays fast.
    from loopstack.cli import (
        _audit,
        _data,
        _demo,
        _deploy,
        _doctor,
        _experiments,
        _features,
        _loop,
        _models,
        _monitor,
        _pipelines,
        _predict,
        _projects,
        _quickstart,
        _rollout,
        _runs,
        _serve,
        _serve_models,
        _stream,
        _token,
        _users,
    )
    from loopstack.cli._project import group_options

    # (name, group, acts in one project: takes --project before its command)
    groups: tuple[tuple[str, typer.Typer, bool], ...] = (
        ("experiments", _experiments.app, True),
        ("runs", _runs.app, True),
        ("models", _models.app, True),
        ("deploy", _deploy.app, True),
        ("features", _features.app, True),
        ("audit", _audit.app, True),
        ("data", _data.app, True),
        ("monitor", _monitor.app, True),
        ("pipelines", _pipelines.app, True),
        ("predict", _predict.app, True),
        ("loop", _loop.app, True),
        ("rollout", _rollout.app, True),
        ("stream", _stream.app, True),
        ("token", _token.app, False),
        ("projects", _projects.app, False),
        ("users", _users.app, False),
    )
    for name, group, scoped in groups:
        app.add_typer(group, name=name, callback=group_options if scoped else None)
    app.command("server")(_serve.server)
    app.command("serve", cls=_serve_models.ServeCommand)(_serve_models.serve)
    app.command("doctor")(_doctor.doctor)
    app.command("quickstart")(_quickstart.quickstart)
    app.command("demo")(_demo.demo)


_register()


def main() -> None:
    app()


# the commands that hang on a group defined above: online features, `models gates`
from loopstack.cli import _features_online, _models_gates  # noqa: E402, F401
