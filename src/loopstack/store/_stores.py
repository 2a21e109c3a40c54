"""The stores one process works with, opened from settings."""

from __future__ import annotations

from dataclasses import dataclass

from loopstack.config import Settings, settings
from loopstack.store.artifacts import ArtifactStore, open_blob_store
from loopstack.store.metadata import Database, open_database

__all__ = ["Stores", "open_stores"]


@dataclass(frozen=True)
class Stores:
    db: Database
    artifacts: ArtifactStore


_cache: dict[tuple[str, str], Stores] = {}


def open_stores(config: Settings | None = None) -> Stores:
    """The metadata and artifact stores named by the configuration (cached per URL pair)."""
    config = config or settings()
    key = (config.db_url, config.artifacts_url)
    stores = _cache.get(key)
    if stores is None:
        from loopstack.store._audit_keys import keyring_for

        db = open_database(config.db_url)
        db.audit_keys = keyring_for(config)
        if config.audit_anchor_every and config.audit_anchor_path:
            db.audit_anchoring = (config.audit_anchor_path, config.audit_anchor_every)
        stores = _cache[key] = Stores(db, ArtifactStore(db, open_blob_store(config.artifacts_url)))
    return stores
