"""sha256 digests of a package's files, and the check made before anything is deserialised."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from pathlib import Path

from loopstack.errors import ArtifactCorrupted

__all__ = ["MANIFEST_NAME", "file_digests", "sha256_of", "verify_files"]

#: The manifest every package carries; it is not listed among its own files.
MANIFEST_NAME = "loopstack-model.json"

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory).as_posix() != MANIFEST_NAME
    )


def file_digests(directory: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``directory`` but the manifest."""
    return {name: sha256_of(directory / name) for name in _model_files(directory)}


def verify_files(
    directory: Path,
    expected: Mapping[str, str],
    *,
    listed: Mapping[str, str] | None = None,
    tolerated: Collection[str] = (),
) -> None:
    """Raise ``ArtifactCorrupted`` unless the files on disk are exactly ``expected``.

    ``listed`` is the manifest's own list, compared too when the expected
    digests came from elsewhere (the registry), so a swapped manifest is caught.
    A ``MANIFEST_NAME`` key in ``expected`` checks the manifest's own digest.
    ``tolerated`` names files that may sit beside the package unrecorded (and are
    never read), such as the ``registered_model_meta`` the MLflow client adds.
    """
    expected = dict(expected)
    manifest_digest = expected.pop(MANIFEST_NAME, None)
    if manifest_digest is not None:
        _compare(MANIFEST_NAME, manifest_digest, sha256_of(directory / MANIFEST_NAME))
    on_disk = _model_files(directory)
    for name in sorted(expected):
        if name.startswith("/") or ".." in name.split("/"):
            raise ArtifactCorrupted(
                f"model file name {name!r} must be a relative path inside the package",
                field=name,
            )
        path = directory / name
        if not path.is_file():
            raise ArtifactCorrupted(
                f"model file {name!r} is missing: expected sha256 {expected[name]}, got no file",
                field=name,
            )
        _compare(name, expected[name], sha256_of(path))
    extra = [name for name in on_disk if name not in expected and name not in tolerated]
    if extra:
        raise ArtifactCorrupted(
            f"model file {extra[0]!r} is not among the package's recorded files "
            f"(expected only {sorted(expected)}; got also {extra})",
            field=extra[0],
        )
    if listed is not None and dict(listed) != expected:
        differing = sorted(
            n for n in set(listed) | set(expected) if listed.get(n) != expected.get(n)
        )
        name = differing[0]
        raise ArtifactCorrupted(
            f"the package manifest lists model file {name!r} with sha256 "
            f"{listed.get(name)}, but the registry recorded {expected.get(name)}",
            field=name,
        )


def _compare(name: str, expected: str, actual: str) -> None:
    if expected.lower() != actual:
        raise ArtifactCorrupted(
            f"model file {name!r} is corrupted: expected sha256 {expected}, got {actual}",
            field=name,
        )
