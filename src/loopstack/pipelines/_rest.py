"""Pipeline runs through a loopstack server's ``/api/v1/pipelines`` routes: the runs'
JSON form and ``RestPipelineRuns``, the client the module-level verbs use for an http(s)
tracking URI. Same entities and errors as the metadata store gives (the server decides
who may read what)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from loopstack.pipelines._store import CostRow, RunRecord, StepRecord

if TYPE_CHECKING:
    from loopstack.store.remote import HttpClient

__all__ = ["RestPipelineRuns", "cost_from_dict", "cost_to_dict", "run_from_dict", "run_to_dict"]


def run_to_dict(record: RunRecord) -> dict[str, Any]:
    """A run as plain JSON-able data, its steps in a list in the graph's order."""
    out = asdict(record)
    order = [n["name"] for n in record.graph.get("nodes", [])]
    order += [name for name in record.steps if name not in order]
    out["steps"] = [asdict(record.steps[name]) for name in order if name in record.steps]
    return out


_RUN_FIELDS = frozenset(f.name for f in fields(RunRecord))
_STEP_FIELDS = frozenset(f.name for f in fields(StepRecord))


def run_from_dict(data: dict[str, Any]) -> RunRecord:
    """The run ``run_to_dict`` gave (what a server adds beside it, such as ``cost``, is
    left out)."""
    steps = {
        s["step"]: StepRecord(**{k: v for k, v in s.items() if k in _STEP_FIELDS})
        for s in data.get("steps", [])
    }
    kept = {k: v for k, v in data.items() if k in _RUN_FIELDS}
    return RunRecord(**{**kept, "steps": steps})


def cost_to_dict(row: CostRow) -> dict[str, Any]:
    """A cost row as plain JSON-able data."""
    return asdict(row)


def cost_from_dict(data: dict[str, Any]) -> CostRow:
    """The cost row ``cost_to_dict`` gave."""
    return CostRow(**data)


class RestPipelineRuns:
    """The project's pipeline runs through a server (read only: runs execute where the
    metadata store is)."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def get_run(self, run_uuid: str) -> RunRecord:
        """The run ``run_uuid`` with its steps; NotFound if there is none."""
        from urllib.parse import quote

        return run_from_dict(self.client.call("GET", f"/pipelines/runs/{quote(run_uuid, '')}"))

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The latest runs first (of ``pipeline`` only)."""
        params = {"pipeline": pipeline, "limit": limit}
        answer = self.client.call("GET", "/pipelines/runs", params=params)
        return [run_from_dict(r) for r in answer["runs"]]

    def graph(self, run_uuid: str, width: int = 80) -> dict[str, Any]:
        """The run's stored graph: ``graph`` (JSON), ``text`` and ``mermaid``."""
        from urllib.parse import quote

        path = f"/pipelines/runs/{quote(run_uuid, '')}/graph"
        return dict(self.client.call("GET", path, params={"width": width}))

    def cost(self, by: str = "pipeline", since_ms: int | None = None) -> list[CostRow]:
        """Cost rows per pipeline or per project (those the caller can see)."""
        since = None if since_ms is None else since_ms / 1000
        answer = self.client.call("GET", "/pipelines/cost", params={"by": by, "since": since})
        return [cost_from_dict(r) for r in answer["rows"]]
