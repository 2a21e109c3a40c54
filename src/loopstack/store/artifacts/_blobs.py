"""Content-addressed blobs: stored under their sha256, verified on every read.

Two ways to read: ``iter_verified`` streams and checks the digest at the end
(for callers that write to a temporary file and discard it on error), and
``open_verified`` checks the whole blob before handing out its first byte
(for callers that cannot take bytes back, such as an HTTP response).
"""

from __future__ import annotations

import abc
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from loopstack.errors import ArtifactCorrupted, NotFound, StoreUnavailable

__all__ = ["BlobStore", "FsspecBlobStore", "LocalBlobStore", "VerifiedBlob", "open_blob_store"]

_CHUNK = 1 << 20
#: A verified copy stays in memory up to this size, and spills to a temporary file beyond.
_SPOOL_IN_MEMORY = 8 << 20


class VerifiedBlob:
    """A blob's bytes, already checked against its sha256: iterate to get them in chunks.

    The bytes come from a private copy made while hashing, so a stored file
    altered after the check cannot reach the reader. Iterating once closes
    the copy; ``close`` releases it early.
    """

    def __init__(self, copy: IO[bytes], size: int) -> None:
        self._copy = copy
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        try:
            while chunk := self._copy.read(_CHUNK):
                yield chunk
        finally:
            self._copy.close()

    def close(self) -> None:
        """Release the copy without reading it."""
        self._copy.close()


def _blob_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class BlobStore(abc.ABC):
    """Where the bytes live. Keys are sha256 digests; a blob is written once and never changed."""

    url: str

    @abc.abstractmethod
    def put_file(self, path: Path) -> tuple[str, int]:
        """Store the file's bytes; return (sha256, size). Idempotent."""

    @abc.abstractmethod
    def _open(self, sha256: str) -> BinaryIO:
        """Open the stored bytes for reading, or raise FileNotFoundError."""

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool: ...

    def local_path(self, sha256: str) -> Path | None:
        """Where the blob's bytes sit on this machine's disk, if they do (a local store);
        None for a remote store. Reading that path skips the digest check."""
        return None

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        import tempfile

        with tempfile.NamedTemporaryFile(delete=False) as fh:
            fh.write(data)
        try:
            return self.put_file(Path(fh.name))
        finally:
            os.unlink(fh.name)

    def iter_verified(self, sha256: str) -> Iterator[bytes]:
        """Yield the blob in chunks; raise ArtifactCorrupted at the end if its digest differs.

        Callers that write chunks somewhere must discard them on that error.
        """
        h = hashlib.sha256()
        try:
            fh = self._open(sha256)
        except FileNotFoundError as exc:
            raise NotFound(f"blob {sha256} is recorded but missing from {self.url}") from exc
        with fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                yield chunk
        if h.hexdigest() != sha256:
            raise ArtifactCorrupted(
                f"artifact content does not match its recorded digest: expected sha256 "
                f"{sha256}, got {h.hexdigest()} (the stored file was altered or damaged)"
            )

    def open_verified(self, sha256: str) -> VerifiedBlob:
        """The blob, hashed in full before this returns; ``ArtifactCorrupted`` if it differs.

        Memory stays bounded: the copy spills to a temporary file past a few MiB.

        >>> for chunk in blobs.open_verified(digest):   # doctest: +SKIP
        ...     response.write(chunk)
        """
        copy = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            size = 0
            for chunk in self.iter_verified(sha256):
                copy.write(chunk)
                size += len(chunk)
            copy.seek(0)
        except BaseException:
            copy.close()
            raise
        return VerifiedBlob(copy, size)

    def read_bytes(self, sha256: str) -> bytes:
        return b"".join(self.iter_verified(sha256))

    def download(self, sha256: str, dest: Path) -> None:
        """Write the blob to ``dest`` only if it verifies (written to a temp file, then renamed)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with tmp.open("wb") as out:
                for chunk in self.iter_verified(sha256):
                    out.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)


def _hash_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class LocalBlobStore(BlobStore):
    """Blobs in a local directory; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the artifact directory {self.root}: {exc}"
            ) from exc

    def _path(self, sha256: str) -> Path:
        return self.root / _blob_key(sha256)

    def put_file(self, path: Path) -> tuple[str, int]:
        sha256, size = _hash_file(path)
        target = self._path(sha256)
        if target.exists():
            return sha256, size
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{sha256}.{uuid.uuid4().hex}.part")
        try:
            with path.open("rb") as src, tmp.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return sha256, size

    def _open(self, sha256: str) -> BinaryIO:
        return self._path(sha256).open("rb")

    def local_path(self, sha256: str) -> Path | None:
        """The blob's file under the store's directory."""
        return self._path(sha256)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()


class FsspecBlobStore(BlobStore):
    """Blobs in any fsspec filesystem (``s3://``, ``gs://``, ``memory://``, ...)."""

    def __init__(self, url: str) -> None:
        import fsspec

        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise StoreUnavailable(f"cannot open the artifact store {url!r}: {exc}") from exc
        self.url = url
        self.root = root.rstrip("/")

    def _path(self, sha256: str) -> str:
        return f"{self.root}/{_blob_key(sha256)}"

    def put_file(self, path: Path) -> tuple[str, int]:
        sha256, size = _hash_file(path)
        target = self._path(sha256)
        if not self.fs.exists(target):
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(path), target)
        return sha256, size

    def _open(self, sha256: str) -> BinaryIO:
        return self.fs.open(self._path(sha256), "rb")  # type: ignore[no-any-return]

    def exists(self, sha256: str) -> bool:
        return bool(self.fs.exists(self._path(sha256)))


def open_blob_store(url: str) -> BlobStore:
    """A local path or ``file://`` URL gets the atomic local store; any other fsspec URL, fsspec."""
    if "://" not in url:
        return LocalBlobStore(url)
    if url.startswith("file://"):
        return LocalBlobStore(url[len("file://") :])
    return FsspecBlobStore(url)
