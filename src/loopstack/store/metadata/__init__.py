"""Metadata store: one SQLAlchemy schema, SQLite and PostgreSQL backends, chosen by URL."""

from loopstack.store.metadata import schema_jobs as _schema_jobs  # noqa: F401  (registers the tables)
from loopstack.store.metadata import schema_loop as _schema_loop  # noqa: F401  (registers the tables)
from loopstack.store.metadata._database import SCHEMES, Database, open_database
from loopstack.store.metadata._leases import Lease, acquire_lease, lease_holder, release_lease

__all__ = [
    "SCHEMES",
    "Database",
    "Lease",
    "acquire_lease",
    "lease_holder",
    "open_database",
    "release_lease",
]
