"""Batch inference: score Parquet input into Parquet output in chunks, in parallel worker
processes (or Ray tasks), resumable, each job a tracked run (``predict_batch``)."""

from loopstack.serving.batch._job import EXECUTORS, BatchResult, predict_batch

__all__ = ["EXECUTORS", "BatchResult", "predict_batch"]
