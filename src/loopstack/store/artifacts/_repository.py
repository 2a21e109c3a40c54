"""Logical artifact paths (``<experiment>/<run>/artifacts/model.pkl``) over content-addressed blobs.

The manifest (path -> sha256, size) lives in the metadata database, so listing
is a query, and every read is checked against the digest recorded at write
time. A blob is written before its manifest row: a crash between the two
leaves an unreferenced blob, never a row without bytes.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from sqlalchemy import Connection, Table, select

from loopstack.errors import Invalid, NotFound
from loopstack.store.artifacts._blobs import BlobStore, VerifiedBlob
from loopstack.store.metadata._database import Database
from loopstack.store.metadata.schema import ArtifactEntry

__all__ = ["ArtifactStore", "FileInfo", "sanitize_path"]

_ENTRIES = cast(Table, ArtifactEntry.__table__)


def sanitize_path(path: str, *, field: str = "path", allow_empty: bool = False) -> str:
    """Normalise a relative artifact path; refuse absolute paths and any ``..`` component.

    >>> sanitize_path("plots/./roc.png")
    'plots/roc.png'
    """
    if not isinstance(path, str):
        raise Invalid(
            f"the {field!r} must be a string; got {type(path).__name__} instead", field=field
        )
    raw = path.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise Invalid(f"the {field!r} must be a relative path; got {path!r} instead", field=field)
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Invalid(f"the {field!r} must not contain '..'; got {path!r} instead", field=field)
    if any("\x00" in p for p in parts):
        raise Invalid(f"the {field!r} must not contain NUL bytes; got {path!r}", field=field)
    clean = "/".join(parts)
    if not clean and not allow_empty:
        raise Invalid(f"the {field!r} must not be empty; got {path!r} instead", field=field)
    return clean


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the listed prefix
    is_dir: bool
    size: int | None = None
    sha256: str | None = None


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class ArtifactStore:
    """Artifacts by logical path; bytes in a ``BlobStore``, the manifest in the metadata store."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    # -- writes ---------------------------------------------------------------------
    def _record(
        self,
        entries: list[dict[str, object]],
        actor: str,
        object_id: str,
        project_id: int | None,
    ) -> None:
        def run(conn: Connection) -> list[dict[str, object]]:
            stmt = self.db.insert(_ENTRIES)
            stmt = stmt.on_conflict_do_update(
                index_elements=["path"],
                set_={
                    "sha256": stmt.excluded.sha256,
                    "size": stmt.excluded.size,
                    "created_at": stmt.excluded.created_at,
                },
            )
            conn.execute(stmt, entries)
            return [{"path": e["path"], "sha256": e["sha256"]} for e in entries]

        self.db.write(
            run,
            actor=actor,
            action="artifact.put",
            object_type="artifact",
            object_id=object_id,
            project_id=project_id,
        )

    def log_file(
        self, local: str | Path, dest: str, *, actor: str, project_id: int | None = None
    ) -> FileInfo:
        """Store one local file at the logical path ``dest`` (audited as made in
        ``project_id``, if given)."""
        dest = sanitize_path(dest)
        local = Path(local)
        if not local.is_file():
            raise Invalid(
                f"expected an existing file to log as an artifact; got {str(local)!r}",
                field="local_path",
            )
        sha256, size = self.blobs.put_file(local)
        self._record(
            [{"path": dest, "sha256": sha256, "size": size, "created_at": int(time.time() * 1000)}],
            actor,
            dest,
            project_id,
        )
        return FileInfo(dest, False, size, sha256)

    def log_bytes(
        self, data: bytes, dest: str, *, actor: str, project_id: int | None = None
    ) -> FileInfo:
        dest = sanitize_path(dest)
        sha256, size = self.blobs.put_bytes(data)
        self._record(
            [{"path": dest, "sha256": sha256, "size": size, "created_at": int(time.time() * 1000)}],
            actor,
            dest,
            project_id,
        )
        return FileInfo(dest, False, size, sha256)

    def log_dir(
        self, local_dir: str | Path, dest_prefix: str, *, actor: str, project_id: int | None = None
    ) -> list[FileInfo]:
        """Store every file under ``local_dir`` below ``dest_prefix``, in one manifest write."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise Invalid(
                f"expected an existing directory; got {str(local_dir)!r}", field="local_dir"
            )
        prefix = sanitize_path(dest_prefix)
        now = int(time.time() * 1000)
        entries, infos = [], []
        for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            rel = sanitize_path(file.relative_to(local_dir).as_posix())
            sha256, size = self.blobs.put_file(file)
            path = f"{prefix}/{rel}"
            entries.append({"path": path, "sha256": sha256, "size": size, "created_at": now})
            infos.append(FileInfo(path, False, size, sha256))
        if entries:
            self._record(entries, actor, prefix, project_id)
        return infos

    # -- reads ----------------------------------------------------------------------
    def _entry(self, path: str) -> tuple[str, int]:
        path = sanitize_path(path)
        row = self.db.read(
            lambda c: c.execute(
                select(_ENTRIES.c.sha256, _ENTRIES.c.size).where(_ENTRIES.c.path == path)
            ).first()
        )
        if row is None:
            raise NotFound(f"no artifact at {path!r}")
        return row.sha256, row.size

    def _under(self, prefix: str) -> list[tuple[str, str, int]]:
        like = _like_prefix(prefix + "/") if prefix else "%"
        rows = self.db.read(
            lambda c: c.execute(
                select(_ENTRIES.c.path, _ENTRIES.c.sha256, _ENTRIES.c.size)
                .where(_ENTRIES.c.path.like(like, escape="\\"))
                .order_by(_ENTRIES.c.path)
            ).all()
        )
        return [(r.path, r.sha256, r.size) for r in rows]

    def exists(self, path: str) -> bool:
        try:
            self._entry(path)
        except NotFound:
            return bool(self._under(sanitize_path(path)))
        return True

    def list(self, prefix: str = "", *, recursive: bool = False) -> list[FileInfo]:
        """Direct children of ``prefix`` (files and sub-directories), paths relative to it."""
        prefix = sanitize_path(prefix, allow_empty=True)
        out: dict[str, FileInfo] = {}
        for path, sha256, size in self._under(prefix):
            rel = path[len(prefix) + 1 :] if prefix else path
            head, sep, _ = rel.partition("/")
            if sep and not recursive:
                out.setdefault(head, FileInfo(head, True))
            else:
                out[rel] = FileInfo(rel, False, size, sha256)
        return sorted(out.values(), key=lambda f: f.path)

    def read_bytes(self, path: str) -> bytes:
        sha256, _ = self._entry(path)
        return self.blobs.read_bytes(sha256)

    def open_verified(self, path: str) -> VerifiedBlob:
        """The file at ``path``, checked against its recorded sha256 before any byte is given.

        ``NotFound`` or ``ArtifactCorrupted`` is raised by this call, never midway
        through iterating, so a caller streaming to a client can still answer an error.

        >>> blob = store.open_verified("1/ab12/artifacts/model/model.pkl")  # doctest: +SKIP
        >>> StreamingResponse(blob, headers={"Content-Length": str(blob.size)})  # doctest: +SKIP
        """
        sha256, _ = self._entry(path)
        return self.blobs.open_verified(sha256)

    def iter_bytes(self, path: str) -> Iterator[bytes]:
        """The file's bytes in chunks, verified in full before the first (see ``open_verified``)."""
        return iter(self.open_verified(path))

    def download(self, path: str, dest_dir: str | Path) -> Path:
        """Copy a file, or a whole directory, under ``dest_dir``; every file is verified."""
        path = sanitize_path(path, allow_empty=True)
        dest_dir = Path(dest_dir)
        try:
            sha256, _ = self._entry(path) if path else ("", 0)
        except NotFound:
            sha256 = ""
        if sha256:
            target = dest_dir / posixpath.basename(path)
            self.blobs.download(sha256, target)
            return target
        files = self._under(path)
        if not files:
            raise NotFound(f"no artifact at {path!r}")
        root = dest_dir / posixpath.basename(path) if path else dest_dir
        for full, digest, _ in files:
            rel = full[len(path) + 1 :] if path else full
            self.blobs.download(digest, root / rel)
        return root
