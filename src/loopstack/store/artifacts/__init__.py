"""Artifact store: content-addressed (sha256) blobs through fsspec, a manifest of logical paths."""

from loopstack.store.artifacts._blobs import (
    BlobStore,
    FsspecBlobStore,
    LocalBlobStore,
    VerifiedBlob,
    open_blob_store,
)
from loopstack.store.artifacts._repository import ArtifactStore, FileInfo, sanitize_path

__all__ = [
    "ArtifactStore",
    "BlobStore",
    "FileInfo",
    "FsspecBlobStore",
    "LocalBlobStore",
    "VerifiedBlob",
    "open_blob_store",
    "sanitize_path",
]
