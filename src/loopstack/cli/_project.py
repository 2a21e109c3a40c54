"""`--project`: the one option every project-scoped command group takes.

It goes before the command (``loopstack runs --project fraud list``) and, on the groups
that took it there first (models, features), after it too. Either way it chooses the
project with ``ls.set_project`` and checks it at once: a project that does not exist,
or that the caller cannot see, is refused alike in one line naming the caller's
projects, whether the commands act on the store or through a server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

__all__ = ["PROJECT", "check_project", "group_options", "one_invocation"]


def check_project() -> None:
    """Refuse the chosen project (``ls.set_project`` or LOOPSTACK_PROJECT) unless the
    caller can use it: locally by ``auth.project_in_use``, remotely by asking the server."""
    from loopstack.config import settings
    from loopstack.store.remote import HttpClient, server_url

    config = settings()
    if config.project is None:
        return
    if server_url(config) is not None:
        HttpClient.from_settings(config).call("GET", "/whoami")
        return
    from loopstack.auth import project_in_use
    from loopstack.cli._stores import local_stores

    project_in_use(local_stores().db, config)


def _choose(value: str | None) -> str | None:
    if value is not None:
        from loopstack.config import set_project

        set_project(value)
        check_project()
    return value


PROJECT = typer.Option(
    None,
    "--project",
    metavar="NAME",
    callback=_choose,
    help="The project to act in (default: LOOPSTACK_PROJECT, else 'default').",
)


def group_options(project: str | None = PROJECT) -> None:
    """Options every project-scoped group takes before its command (``PROJECT``'s callback
    does the work; LOOPSTACK_PROJECT alone is checked where a command opens its store)."""


@contextmanager
def one_invocation() -> Iterator[None]:
    """A project chosen by ``--project`` lasts for one command line, also in-process."""
    from loopstack.config import chosen_project, set_project

    before = chosen_project()
    set_project(None)
    try:
        yield
    finally:
        set_project(before)
