"""The Python side of reproducing a run: its recorded package set and a fresh venv with it.

A run records its packages in the tag ``loopstack.packages``, cut at 8,000
characters (a tag's limit). ``record_requirements`` stores the whole list as
the artifact ``environment/requirements.txt``; when present it wins.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loopstack.errors import LoopstackError

if TYPE_CHECKING:
    from loopstack.tracking._client import TrackingClient
    from loopstack.tracking._entities import Run

__all__ = [
    "PackageSet",
    "REQUIREMENTS_ARTIFACT",
    "VenvResult",
    "create_venv",
    "package_set",
    "parse_packages",
    "record_requirements",
]

REQUIREMENTS_ARTIFACT = "environment/requirements.txt"
PACKAGES_TAG = "loopstack.packages"
TAG_LIMIT = 8000
#: never pinned from a recorded list: the venv brings its own installer
_INSTALLER = {"pip", "setuptools", "wheel", "distribute"}
_NOT_FOUND = re.compile(
    r"(?:No matching distribution found for|Could not find a version that satisfies the "
    r"requirement)\s+([A-Za-z0-9_.\-\[\]]+(?:==[^\s;)]+)?)"
)
_PIP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class PackageSet:
    """The packages a run recorded, and where the list came from."""

    requirements: list[str]
    source: str  # "artifact", "tag" or "none"
    truncated: bool = False

    @property
    def names(self) -> dict[str, str]:
        """Normalised name -> the ``name==version`` line."""
        return {_normalise(r.split("==", 1)[0]): r for r in self.requirements}


@dataclass
class VenvResult:
    python: Path
    installed: list[str] = field(default_factory=list)
    not_installed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_packages(text: str, *, truncated: bool = False) -> list[str]:
    """``name==version`` lines from a recorded list; a cut list loses its (partial) last line.

    >>> parse_packages("numpy==2.0\\npand", truncated=True)
    ['numpy==2.0']
    """
    lines = [line.strip() for line in text.splitlines()]
    if truncated and lines:
        lines = lines[:-1]
    return [line for line in lines if line and not line.startswith("#") and "==" in line]


def package_set(run: Run, client: TrackingClient) -> PackageSet:
    """The run's package set: the full artifact when it was stored, else the (maybe cut) tag."""
    try:
        files = {f.path for f in client.list_artifacts(run.run_id, "environment")}
    except (LoopstackError, OSError):
        files = set()
    if REQUIREMENTS_ARTIFACT in files:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run.run_id, REQUIREMENTS_ARTIFACT, tmp)
            return PackageSet(parse_packages(Path(path).read_text()), "artifact")
    tag = run.tags.get(PACKAGES_TAG)
    if tag is None:
        return PackageSet([], "none")
    truncated = len(tag) >= TAG_LIMIT
    return PackageSet(parse_packages(tag, truncated=truncated), "tag", truncated)


def record_requirements(run_id: str, client: TrackingClient | None = None) -> None:
    """Store this process's full package list with the run, as ``environment/requirements.txt``.

    The tag ``loopstack.packages`` stops at 8,000 characters; this artifact does not.
    The fluent ``start_run`` can call it right after creating a run.

    >>> record_requirements(run.run_id)
    """
    from loopstack.tracking._client import TrackingClient
    from loopstack.tracking._environment import installed_packages

    client = client or TrackingClient()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requirements.txt"
        path.write_text(installed_packages() + "\n")
        client.log_artifact(run_id, path, "environment")


def _loopstack_source() -> Path | None:
    """The directory to put on a venv's path for this loopstack, if it is a source checkout.

    An installed (non-editable) loopstack sits in site-packages beside everything else;
    putting that on the path would make the venv anything but fresh.
    """
    import loopstack

    parent = Path(loopstack.__file__).resolve().parent.parent
    if parent.name in {"site-packages", "dist-packages"}:
        return None
    return parent


def _pip_install(python: Path, requirements: list[str], log: Path) -> list[str]:
    """Install ``requirements``; returns the ones pip could not find, by name."""
    failed: list[str] = []
    pending = list(requirements)
    for _ in range(len(requirements) + 1):
        if not pending:
            return failed
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            fh.write("\n".join(pending) + "\n")
            req_file = fh.name
        try:
            out = subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                    req_file,
                ],
                capture_output=True,
                text=True,
                timeout=_PIP_TIMEOUT_S,
                check=False,
            )
        finally:
            os.unlink(req_file)
        with log.open("a") as fh:
            fh.write(out.stdout + out.stderr)
        if out.returncode == 0:
            return failed
        found = _NOT_FOUND.search(out.stderr)
        culprit = None
        if found:
            name = _normalise(found.group(1).split("==", 1)[0].split("[", 1)[0])
            culprit = next((r for r in pending if _normalise(r.split("==", 1)[0]) == name), None)
        if culprit is None:
            # pip failed for a reason it did not pin on one requirement: try them one by one.
            return failed + _one_by_one(python, pending, log)
        failed.append(culprit)
        pending.remove(culprit)
    return failed


def _one_by_one(python: Path, requirements: list[str], log: Path) -> list[str]:
    failed = []
    for req in requirements:
        out = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", req],
            capture_output=True,
            text=True,
            timeout=_PIP_TIMEOUT_S,
            check=False,
        )
        with log.open("a") as fh:
            fh.write(out.stdout + out.stderr)
        if out.returncode != 0:
            failed.append(req)
    return failed


def create_venv(target: Path, packages: PackageSet, log: Path) -> VenvResult:
    """A new venv at ``target`` (no system site-packages) with the recorded packages.

    loopstack itself comes from this process's source checkout when there is one
    (a ``.pth`` file), since a development version is on no index.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", str(target)], check=True, capture_output=True, timeout=300
    )
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = target / bindir / ("python.exe" if os.name == "nt" else "python")
    result = VenvResult(python)
    wanted = [r for r in packages.requirements if _normalise(r.split("==", 1)[0]) not in _INSTALLER]
    source = _loopstack_source()
    if source is not None:
        recorded = packages.names.get("loopstack")
        wanted = [r for r in wanted if _normalise(r.split("==", 1)[0]) != "loopstack"]
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        (Path(site) / "_loopstack_source.pth").write_text(f"{source}\n")
        from loopstack import __version__ as current

        result.notes.append(
            f"loopstack {current} linked from {source}"
            + (f" (the run recorded {recorded})" if recorded else "")
        )
    result.not_installed = _pip_install(python, wanted, log) if wanted else []
    result.installed = [r for r in wanted if r not in result.not_installed]
    return result
