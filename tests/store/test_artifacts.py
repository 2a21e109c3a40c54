"""The artifact store contract, run against every blob backend."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopstack.errors import ArtifactCorrupted, Invalid, NotFound
from loopstack.store.artifacts import ArtifactStore, LocalBlobStore, open_blob_store
from loopstack.store.metadata import Database


@pytest.fixture(params=["local", "memory"])
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    url = str(tmp_path / "blobs") if request.param == "local" else f"memory://ls-{uuid.uuid4().hex}"
    return ArtifactStore(db, open_blob_store(url))


def test_round_trip_and_content_addressing(artifacts: ArtifactStore, tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"\x00weights" * 1000)
    info = artifacts.log_file(f, "1/run/artifacts/model.bin", actor="t")
    again = artifacts.log_file(f, "1/run/artifacts/copy.bin", actor="t")
    assert info.sha256 == again.sha256 and info.size == 8000
    assert artifacts.read_bytes("1/run/artifacts/copy.bin") == f.read_bytes()
    listing = artifacts.list("1/run/artifacts")
    assert [(x.path, x.is_dir) for x in listing] == [("copy.bin", False), ("model.bin", False)]


def test_directories_list_and_download(artifacts: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.txt").write_text("t")
    (src / "a" / "b" / "deep.txt").write_text("d")
    artifacts.log_dir(src, "x/artifacts", actor="t")
    assert [(f.path, f.is_dir) for f in artifacts.list("x/artifacts")] == [
        ("a", True),
        ("top.txt", False),
    ]
    assert [f.path for f in artifacts.list("x/artifacts", recursive=True)] == [
        "a/b/deep.txt",
        "top.txt",
    ]
    out = artifacts.download("x/artifacts/a", tmp_path / "dl")
    assert (out / "b" / "deep.txt").read_text() == "d"
    with pytest.raises(NotFound, match="no artifact"):
        artifacts.download("x/artifacts/missing", tmp_path / "dl")


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs/path", "a/../../b", "C:/win", ""])
def test_unsafe_paths_are_refused(artifacts: ArtifactStore, tmp_path: Path, bad: str) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(Invalid, match="path"):
        artifacts.log_file(f, bad, actor="t")


def test_a_tampered_blob_is_refused_on_read(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    blobs = LocalBlobStore(tmp_path / "blobs")
    store = ArtifactStore(db, blobs)
    f = tmp_path / "model.pkl"
    f.write_bytes(b"trusted model bytes")
    info = store.log_file(f, "r/model.pkl", actor="t")
    assert info.sha256
    blobs._path(info.sha256).write_bytes(b"malicious model bytes")
    with pytest.raises(ArtifactCorrupted, match=f"expected sha256 {info.sha256}"):
        store.read_bytes("r/model.pkl")
    dest = tmp_path / "dl"
    with pytest.raises(ArtifactCorrupted):
        store.download("r/model.pkl", dest)
    assert not (dest / "model.pkl").exists()  # nothing unverified is left behind


def _tamper(store: ArtifactStore, sha256: str, data: bytes) -> None:
    """Rewrite a stored blob in place, as someone with access to the bucket or disk could."""
    blobs = store.blobs
    if isinstance(blobs, LocalBlobStore):
        blobs._path(sha256).write_bytes(data)
    else:
        blobs.fs.pipe_file(blobs._path(sha256), data)  # type: ignore[attr-defined]


def test_open_verified_refuses_a_tampered_blob_before_yielding(
    artifacts: ArtifactStore, tmp_path: Path
) -> None:
    f = tmp_path / "model.pkl"
    f.write_bytes(b"trusted model bytes" * 100)
    info = artifacts.log_file(f, "r/model.pkl", actor="t")
    assert info.sha256
    _tamper(artifacts, info.sha256, b"malicious model bytes" * 100)
    # The call itself raises: there is no iterator from which a first chunk could escape.
    with pytest.raises(ArtifactCorrupted, match=f"expected sha256 {info.sha256}"):
        artifacts.open_verified("r/model.pkl")
    with pytest.raises(ArtifactCorrupted, match=f"expected sha256 {info.sha256}"):
        artifacts.iter_bytes("r/model.pkl")
    with pytest.raises(NotFound, match="no artifact"):
        artifacts.open_verified("r/other.pkl")


def test_open_verified_streams_large_blobs_from_the_checked_copy(
    artifacts: ArtifactStore, tmp_path: Path
) -> None:
    f = tmp_path / "big.bin"
    data = bytes(range(256)) * (40 * 1024 + 3)  # ~10 MiB: spills past the in-memory limit
    f.write_bytes(data)
    info = artifacts.log_file(f, "r/big.bin", actor="t")
    assert info.sha256
    blob = artifacts.open_verified("r/big.bin")
    assert blob.size == len(data)
    # Altering the stored blob after the check changes nothing the reader gets.
    _tamper(artifacts, info.sha256, b"x" * len(data))
    chunks = list(blob)
    assert max(len(c) for c in chunks) <= 1 << 20
    assert b"".join(chunks) == data
