"""The `loopstack` command line (typer + rich)."""

from loopstack.cli._app import app, main

__all__ = ["app", "main"]
