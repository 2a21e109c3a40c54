"""The root `loopstack` command; each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(name="loopstack", no_args_is_help=True, add_completion=False,
                  help="loopstack: tracking, registry, features, serving and monitoring in one.")


@app.command()
def server(host: str = typer.Option("127.0.0.1", help="Interface to bind."),
           port: int = typer.Option(5000, help="Port to listen on."),
           workers: int = typer.Option(1, help="Worker processes.")) -> None:
    """Run the loopstack server (native REST, MLflow REST API, /health, /metrics)."""
    from loopstack.server import serve

    serve(host=host, port=port, workers=workers)


def main() -> None:
    app()
