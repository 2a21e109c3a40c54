"""Persistence and nothing else: metadata (SQL), artifacts (content-addressed), audit."""

from loopstack.store._stores import Stores, open_stores

__all__ = ["Stores", "open_stores"]
