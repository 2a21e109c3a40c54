"""Where a run ran: Python, packages, git commit and dirty flag, host, command line.

It goes into tags (never params), computed once per process: listing the
installed packages and asking git each cost tens of milliseconds.
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import socket
import subprocess
import sys

__all__ = ["environment_tags", "installed_packages"]

_GIT_TIMEOUT_S = 5


@functools.cache
def installed_packages() -> str:
    """``name==version`` lines for every installed distribution, sorted."""
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(seen[k] for k in sorted(seen))


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.cache
def _git_state(cwd: str) -> dict[str, str]:
    commit = _git("-C", cwd, "rev-parse", "HEAD")
    if not commit:
        return {}
    status = _git("-C", cwd, "status", "--porcelain", "--untracked-files=no")
    tags = {
        "mlflow.source.git.commit": commit,
        "loopstack.git.dirty": "true" if status else "false",
    }
    remote = _git("-C", cwd, "config", "--get", "remote.origin.url")
    if remote:
        tags["mlflow.source.git.repoURL"] = remote
    return tags


def environment_tags() -> dict[str, str]:
    """Tags describing this process's environment."""
    script = sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>"
    cwd = os.path.dirname(os.path.abspath(script)) if os.path.isfile(script) else os.getcwd()
    tags = {
        "loopstack.python": platform.python_version(),
        "loopstack.platform": platform.platform(),
        "loopstack.host": socket.gethostname(),
        "loopstack.command": shlex.join([sys.executable, *sys.argv])[:8000],
        "mlflow.source.name": script,
        "mlflow.source.type": "LOCAL",
        "loopstack.packages": installed_packages()[:8000],
    }
    tags.update(_git_state(cwd))
    return tags
