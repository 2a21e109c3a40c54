"""The lineage graph: what any run, dataset, model version or deployment came from and fed.

Nodes are ``"<type>:<id>"`` strings: ``run:<run_id>``, ``dataset:<dataset_id>``,
``dataset_version:<name>/<version>``, ``model_version:<name>/<version>``,
``deployment:<name>``. Edges come from three places: explicit lineage edges, the
datasets a run logged as inputs (a registered dataset version logged as an input is
the ``dataset_version`` node itself), and the run a model version was logged from.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, select

from loopstack.errors import Invalid
from loopstack.store.metadata._database import Database
from loopstack.store.metadata.schema import Dataset, LineageEdge, RunInput

if TYPE_CHECKING:
    pass

__all__ = ["LineageGraph", "lineage", "node_id"]

_EDGES = cast(Table, LineageEdge.__table__)
_RI, _DS = cast(Table, RunInput.__table__), cast(Table, Dataset.__table__)
_TYPES = ("run", "dataset", "dataset_version", "model_version", "deployment")
_VERSION_INPUT = "dataset_version"  # source_type of a DatasetVersion logged as input


@dataclass
class LineageGraph:
    root: str
    upstream: list[str] = field(default_factory=list)
    downstream: list[str] = field(default_factory=list)
    #: (src, dst, relation) for every edge reached
    edges: list[tuple[str, str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "upstream": self.upstream,
            "downstream": self.downstream,
            "edges": [list(e) for e in self.edges],
            "labels": self.labels,
        }


def node_id(obj: Any) -> str:
    """The node of a run, model version, dataset input, or a ``"type:id"`` string."""
    if isinstance(obj, str):
        kind, sep, _ = obj.partition(":")
        if sep and kind in _TYPES:
            return obj
        raise Invalid(
            f"expected a lineage node like 'run:<id>' or 'model_version:<name>/<n>' "
            f"(types: {', '.join(_TYPES)}); got {obj!r} instead",
            field="obj",
        )
    name = type(obj).__name__
    if name in ("Run", "ActiveRun"):
        return f"run:{obj.run_id}"
    if name == "ModelVersion":
        return f"model_version:{obj.name}/{obj.version}"
    if name == "DatasetVersion":
        return f"dataset_version:{obj.name}/{obj.version}"
    raise Invalid(
        f"expected a run, a model version or a 'type:id' string; got {name} instead", field="obj"
    )


def _neighbours(conn: Connection, node: str, upstream: bool) -> list[tuple[str, str, str]]:
    kind, _, ident = node.partition(":")
    out: list[tuple[str, str, str]] = []
    col_t, col_i = (
        (_EDGES.c.dst_type, _EDGES.c.dst_id) if upstream else (_EDGES.c.src_type, _EDGES.c.src_id)
    )
    for e in conn.execute(select(_EDGES).where(col_t == kind, col_i == ident)):
        out.append((f"{e.src_type}:{e.src_id}", f"{e.dst_type}:{e.dst_id}", e.relation))
    if kind == "run" and upstream:
        for r in conn.execute(
            select(_RI.c.dataset_id, _DS.c.source_type, _DS.c.source)
            .join(_DS, _DS.c.dataset_id == _RI.c.dataset_id, isouter=True)
            .where(_RI.c.run_id == ident)
        ):
            if r.source_type == _VERSION_INPUT and r.source.startswith("dataset:"):
                out.append((f"dataset_version:{r.source[8:]}", node, "input"))
            else:
                out.append((f"dataset:{r.dataset_id}", node, "input"))
    if kind == "dataset_version" and not upstream:
        for r in conn.execute(
            select(_RI.c.run_id)
            .join(_DS, _DS.c.dataset_id == _RI.c.dataset_id)
            .where(_DS.c.source_type == _VERSION_INPUT, _DS.c.source == f"dataset:{ident}")
            .distinct()
        ):
            out.append((node, f"run:{r.run_id}", "input"))
    if kind == "dataset" and not upstream:
        for r in conn.execute(select(_RI.c.run_id).where(_RI.c.dataset_id == ident)):
            out.append((node, f"run:{r.run_id}", "input"))
    return out


def lineage(db: Database, obj: Any, *, max_depth: int = 20) -> LineageGraph:
    """Walk upstream (what ``obj`` came from) and downstream (what it fed), breadth first."""
    root = node_id(obj)

    def run(conn: Connection) -> LineageGraph:
        graph = LineageGraph(root)
        seen_edges: set[tuple[str, str, str]] = set()
        for upstream in (True, False):
            seen = {root}
            queue = deque([(root, 0)])
            while queue:
                node, depth = queue.popleft()
                if depth >= max_depth:
                    continue
                for edge in _neighbours(conn, node, upstream):
                    if edge not in seen_edges:
                        seen_edges.add(edge)
                        graph.edges.append(edge)
                    nxt = edge[0] if upstream else edge[1]
                    if nxt not in seen:
                        seen.add(nxt)
                        (graph.upstream if upstream else graph.downstream).append(nxt)
                        queue.append((nxt, depth + 1))
        datasets = [
            n.split(":", 1)[1]
            for n in graph.upstream + graph.downstream + [root]
            if n.startswith("dataset:")
        ]
        if datasets:
            for d in conn.execute(
                select(_DS.c.dataset_id, _DS.c.name, _DS.c.digest).where(
                    _DS.c.dataset_id.in_(datasets)
                )
            ):
                graph.labels[f"dataset:{d.dataset_id}"] = f"{d.name}@{d.digest[:12]}"
        return graph

    return cast(LineageGraph, db.read(run))
