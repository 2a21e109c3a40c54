"""`loopstack server`: says where it listens and what it serves, refuses a port it cannot use."""

from __future__ import annotations

import typer

__all__ = ["bind_error", "server"]


def bind_error(host: str, port: int, option: str = "--port") -> str | None:
    """Why ``host:port`` cannot be listened on now, or None if it can (``option`` is the
    one that gave the port, named in the message)."""
    import socket

    if not 1 <= port <= 65535:
        return f"{option} must be a TCP port from 1 to 65535; got {port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot resolve the host {host!r} ({exc})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        # As uvicorn binds: connections in TIME_WAIT from an earlier server do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except PermissionError:
            return f"no permission to listen on port {port} (ports below 1024 need root)"
        except OSError as exc:
            if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
                return f"port {port} on {host} is already in use; pass {option} with a free one"
            return f"cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None


def _masked(url: str) -> str:
    """A store URL without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def server(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(5000, help="Port to listen on (1-65535)."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="Log one line per request."
    ),
) -> None:
    """Run the loopstack server (native REST, MLflow REST API, /docs, /health, /metrics)."""
    from loopstack import __version__
    from loopstack.cli._output import console, fail
    from loopstack.config import settings
    from loopstack.server import serve

    problem = bind_error(host, port)
    if problem:
        fail(problem)
    config = settings()
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    out = console()
    out.print(f"loopstack {__version__} server listening on [bold]{url}[/]", highlight=False)
    out.print(f"  metadata:   {_masked(config.db_url)}", highlight=False, soft_wrap=True)
    out.print(f"  artifacts:  {config.artifacts_url}", highlight=False, soft_wrap=True)
    out.print(
        f"  auth:       {'on (bearer tokens)' if config.auth else 'off (every caller is admin)'}",
        highlight=False,
    )
    out.print(
        f"  workers:    {workers}   access log: {'on' if access_log else 'off'}", highlight=False
    )
    out.print(f"  API docs:   {url}/docs", highlight=False)
    out.print(f"  MLflow:     MLFLOW_TRACKING_URI={url}", highlight=False)
    serve(host=host, port=port, workers=workers, access_log=access_log)
