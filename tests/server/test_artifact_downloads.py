"""Artifact downloads over HTTP are verified before the first byte.

loopstack's own REST client, logging and downloading through a server, gets the
file whole or an ``ArtifactCorrupted`` naming the digest, never a partial file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import loopstack as ls
from loopstack.errors import ArtifactCorrupted
from loopstack.server import create_app
from loopstack.store import open_stores
from loopstack.store.artifacts import LocalBlobStore
from loopstack.store.remote import close_shared
from tests.conftest import ThreadedServer


def test_rest_client_gets_whole_files_or_artifact_corrupted(
    ls_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_DB_URL", f"sqlite:///{ls_home / 'loopstack.db'}")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(bytes(range(256)) * 4096)
    with ThreadedServer(create_app()) as server:
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server.url)
        try:
            with ls.start_run(experiment="dl", capture_env=False) as run:
                run.log_artifact(weights, "model")
            client = ls.TrackingClient()
            got = client.download_artifacts(run.run_id, "model/weights.bin", tmp_path / "ok")
            assert got.read_bytes() == weights.read_bytes()

            [info] = [f for f in client.list_artifacts(run.run_id, "model") if not f.is_dir]
            blobs = open_stores().artifacts.blobs
            assert isinstance(blobs, LocalBlobStore) and info.sha256
            blobs._path(info.sha256).write_bytes(b"\x00" * len(weights.read_bytes()))

            dest = tmp_path / "bad"
            with pytest.raises(ArtifactCorrupted, match=f"expected sha256 {info.sha256}"):
                client.download_artifacts(run.run_id, "model/weights.bin", dest)
            assert not dest.exists() or not any(p.is_file() for p in dest.rglob("*"))
        finally:
            close_shared(server.url)
