"""The code side of reproducing a run: find its commit in a local repository, check it out."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

__all__ = ["checkout", "commit_files", "find_repository", "locate_entry_point", "toplevel"]

_GIT_TIMEOUT_S = 60
_CLONE_TIMEOUT_S = 300


def _git(*args: str, timeout: float = _GIT_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def toplevel(path: str | Path) -> Path | None:
    """The root of the git working tree holding ``path``, if any."""
    p = Path(path)
    if not p.is_dir():
        return None
    try:
        out = _git("-C", str(p), "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _has_commit(repo: Path, commit: str) -> bool:
    try:
        return _git("-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def local_url_path(url: str | None) -> Path | None:
    """A remote URL that is really a directory on this machine (``/srv/x.git``, ``file://``)."""
    if not url:
        return None
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" in url or (":" in url and not url.startswith("/")):
        return None  # https://, ssh://, git@host:path
    return Path(url) if Path(url).exists() else None


def find_repository(commit: str, candidates: list[Path]) -> tuple[Path | None, list[str]]:
    """The first candidate repository holding ``commit``, and every place looked at."""
    looked: list[str] = []
    seen: set[Path] = set()
    for cand in candidates:
        repo = toplevel(cand) or (cand if (cand / "HEAD").is_file() else None)  # bare repo
        if repo is None:
            looked.append(f"{cand} (not a git repository)")
            continue
        if repo in seen:
            continue
        seen.add(repo)
        if _has_commit(repo, commit):
            return repo, looked
        looked.append(str(repo))
    return None, looked


def commit_files(repo: str | Path, commit: str) -> list[str]:
    out = _git("-C", str(repo), "ls-tree", "-r", "--name-only", commit)
    return out.stdout.splitlines() if out.returncode == 0 else []


def locate_entry_point(script: str, repo: Path | None, files: list[str]) -> str | None:
    """The path, inside the commit, of the script the run was started with.

    An absolute path under the repository maps directly; otherwise the longest
    unambiguous match of the path's trailing parts wins (the repository may live
    elsewhere now, or the run may have started from a subdirectory).
    """
    tracked = set(files)
    p = Path(script)
    if p.is_absolute() and repo is not None:
        try:
            rel = Path(os.path.realpath(p)).relative_to(os.path.realpath(repo)).as_posix()
        except ValueError:
            rel = None
        if rel in tracked:
            return rel
    elif not p.is_absolute():
        rel = PurePosixPath(p.as_posix()).as_posix().removeprefix("./")
        if rel in tracked:
            return rel
    parts = PurePosixPath(p.as_posix()).parts
    for k in range(len(parts), 0, -1):
        suffix = "/".join(parts[-k:]).lstrip("/")
        matches = [f for f in files if f == suffix or f.endswith("/" + suffix)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            return None
    return None


def checkout(source: str, commit: str, dest: Path) -> str | None:
    """Check ``commit`` of ``source`` (a path or URL) out into ``dest``; an error text, or None.

    A local repository is cloned with ``--shared`` (no copying, and the original's
    working tree, index and worktree list stay untouched).
    """
    local = Path(source).exists()
    args = [
        "clone",
        "--quiet",
        "--no-checkout",
        *(["--shared"] if local else []),
        source,
        str(dest),
    ]
    try:
        out = _git(*args, timeout=_CLONE_TIMEOUT_S)
        if out.returncode != 0:
            hint = "" if local else " (cloning a remote needs network access)"
            return f"git clone {source} failed{hint}: {out.stderr.strip()}"
        out = _git(
            "-C",
            str(dest),
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            commit,
        )
        if out.returncode != 0:
            return f"git checkout {commit} failed: {out.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"git failed: {exc}"
    return None
