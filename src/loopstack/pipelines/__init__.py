"""Pipelines in plain Python: ``@step``, ``@pipeline``, typed artifacts, a content cache,
retries, resume, checkpoints and cost, run by an executor (local, process, Ray).

>>> @ls.step
... def load(rows: int = 1000) -> pd.DataFrame: ...
>>> @ls.pipeline
... def training(rows: int = 1000):
...     train(load(rows=rows))
>>> run = training.run(rows=2000)

Outputs are stored by kind: DataFrames and Arrow tables as Parquet, numpy arrays as
``.npy``, plain values and metrics as canonical JSON, and models and any other object
with pickle, so load pipeline artifacts only from stores you trust.
"""

from loopstack.pipelines._api import cost, get_run, list_runs, resume, run_entrypoint
from loopstack.pipelines._artifacts import ArtifactRef
from loopstack.pipelines._checkpoint import Checkpoint, checkpoint
from loopstack.pipelines._graph import Graph
from loopstack.pipelines._pipeline import Pipeline, load_entrypoint, pipeline
from loopstack.pipelines._results import PipelineRun
from loopstack.pipelines._steps import Node, OutputRef, ParamRef, Step, step
from loopstack.pipelines._store import (
    CostRow,
    PipelineStore,
    RunRecord,
    SqlPipelineStore,
    StepRecord,
)

__all__ = [
    "ArtifactRef",
    "Checkpoint",
    "CostRow",
    "Graph",
    "Node",
    "OutputRef",
    "ParamRef",
    "Pipeline",
    "PipelineRun",
    "PipelineStore",
    "RunRecord",
    "SqlPipelineStore",
    "Step",
    "StepRecord",
    "checkpoint",
    "cost",
    "get_run",
    "list_runs",
    "load_entrypoint",
    "pipeline",
    "resume",
    "run_entrypoint",
    "step",
]
