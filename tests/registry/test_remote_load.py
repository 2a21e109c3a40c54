"""load_model through a server when the package is streamed rather than verified whole first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import loopstack as ls
from loopstack.store import open_stores
from tests.conftest import ThreadedServer
from tests.registry.test_registry_contract import _iris, _log

sklearn = pytest.importorskip("sklearn", reason="install loopstack[sklearn] to run this test")


@pytest.fixture
def streaming_server(ls_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server that streams every artifact file (as it does files over 64 MiB)."""
    from loopstack.server import create_app
    from loopstack.server.routes import native
    from loopstack.store.remote import close_shared

    monkeypatch.setattr(native, "_VERIFY_BEFORE_SENDING", 0)
    monkeypatch.setenv("LOOPSTACK_DB_URL", f"sqlite:///{ls_home / 'loopstack.db'}")
    with ThreadedServer(create_app()) as server:
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server.url)
        yield server.url
        close_shared(server.url)


def test_a_streamed_package_loads_and_a_tampered_one_is_cut_off(streaming_server: str) -> None:
    clf, X = _iris()
    _, version = _log("streamed", clf, X)
    loaded = ls.load_model("models:/streamed/1")
    np.testing.assert_allclose(loaded.predict_proba(X.tail(5)), clf.predict_proba(X.tail(5)))
    blob = open_stores().artifacts.blobs._path(version.files["model.joblib"])  # type: ignore[attr-defined]
    blob.write_bytes(b"x" * 200_000 + b"not the registered model")
    with pytest.raises(ls.StoreUnavailable, match="broke off"):
        ls.load_model("models:/streamed/1")
