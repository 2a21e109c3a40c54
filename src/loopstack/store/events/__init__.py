"""The append-only event log: Parquet segments in the blob store, indexed in the metadata DB.

High-rate data (predictions, feedback, monitoring windows) goes here, never
through the audit chain. See ``EventLog``.
"""

from loopstack.store.events._log import EventLog, Segment

__all__ = ["EventLog", "Segment"]
