"""Metadata store: one SQLAlchemy schema, SQLite and PostgreSQL backends, chosen by URL."""

from loopstack.store.metadata._database import SCHEMES, Database, open_database

__all__ = ["SCHEMES", "Database", "open_database"]
