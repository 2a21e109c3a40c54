"""Pipelines: steps, the DAG, the cache, and the executors that run steps."""
