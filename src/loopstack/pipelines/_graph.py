"""A pipeline's graph: its nodes in topological order, checked when it is defined.

Refused at definition: a cycle (named, ``a -> b -> a``) and an output whose declared
type does not fit the parameter that takes it (unannotated and ``Any`` fit anything).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any

from loopstack.errors import Invalid
from loopstack.pipelines._steps import Node, OutputRef, ParamRef

__all__ = ["Graph", "check_types", "output_refs", "topological"]


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _fits(produced: Any, wanted: Any) -> bool:
    if produced is None or wanted is None or typing.Any in (produced, wanted):
        return True
    if produced == wanted:
        return True
    if typing.get_origin(wanted) in (typing.Union, types.UnionType):
        return any(_fits(produced, w) for w in typing.get_args(wanted))
    p_origin = typing.get_origin(produced) or produced
    w_origin = typing.get_origin(wanted) or wanted
    if not (isinstance(p_origin, type) and isinstance(w_origin, type)):
        return True  # a TypeVar, a Protocol alias...: not ours to judge
    if not issubclass(p_origin, w_origin):
        return w_origin is float and p_origin is int  # an int fits a float parameter
    p_args, w_args = typing.get_args(produced), typing.get_args(wanted)
    if p_args and w_args and len(p_args) == len(w_args):
        return all(_fits(p, w) for p, w in zip(p_args, w_args, strict=True))
    return True


def check_types(nodes: dict[str, Node]) -> None:
    """Invalid when a node's input is declared as a type its producer does not return."""
    for node in nodes.values():
        wanted_types = node.step.hints()
        for param, ref in node.inputs.items():
            producer = nodes[ref.node]
            produced = producer.step.return_types().get(ref.output)
            wanted = wanted_types.get(param)
            if not _fits(produced, wanted):
                raise Invalid(
                    f"step {node.name!r} parameter {param!r} expects {_type_name(wanted)}, "
                    f"but step {producer.name!r} returns {_type_name(produced)}"
                    + (f" as its output {ref.output!r}" if ref.output else "")
                )


def topological(nodes: dict[str, Node]) -> list[str]:
    """The node names, each after the nodes it takes outputs from; Invalid on a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise Invalid(f"the pipeline has a cycle: {' -> '.join(cycle)}")
        state[name] = 1
        for ref in nodes[name].inputs.values():
            visit(ref.node, [*path, name])
        state[name] = 2
        order.append(name)

    for name in sorted(nodes):
        visit(name, [])
    # keep the order the nodes were defined in where the data flow allows it
    rank = {name: i for i, name in enumerate(nodes)}
    done: list[str] = []
    left = set(order)
    while left:
        ready = [n for n in left if all(r.node in done for r in nodes[n].inputs.values())]
        first = min(ready, key=rank.__getitem__)
        done.append(first)
        left.remove(first)
    return done


class Graph:
    """The nodes of a pipeline, in topological order."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        by_name = {n.name: n for n in nodes}
        self.order = topological(by_name)
        self.nodes: dict[str, Node] = {name: by_name[name] for name in self.order}
        check_types(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def upstream(self, name: str) -> list[str]:
        """The nodes whose outputs ``name`` takes."""
        return sorted({ref.node for ref in self.nodes[name].inputs.values()})

    def to_dict(self) -> dict[str, Any]:
        """The graph as JSON (stored with each pipeline run)."""
        out = []
        for node in self.nodes.values():
            step = node.step
            out.append(
                {
                    "name": node.name,
                    "step": f"{step.__module__}:{step.__qualname__}",
                    "inputs": {p: ref.label for p, ref in node.inputs.items()},
                    "params": {
                        p: {"$param": v.name} if isinstance(v, ParamRef) else v
                        for p, v in node.params.items()
                    },
                    "outputs": list(step.outputs or [node.name]),
                    "cache": step.cache,
                    "retries": step.retries,
                    "timeout_s": step.timeout_s,
                }
            )
        return {"nodes": out}

    def render_text(self, width: int = 80) -> str:
        """The steps in topological order with what each takes, lines at most ``width``."""
        lines = []
        pad = min(max((len(n) for n in self.nodes), default=4), 24)
        for i, node in enumerate(self.nodes.values(), 1):
            takes = [f"{p}={r.label}" for p, r in node.inputs.items()]
            takes += [f"{p}=${v.name}" for p, v in node.params.items() if isinstance(v, ParamRef)]
            line = f"{i:>2}. {node.name:<{pad}}"
            if takes:
                line += " <- " + ", ".join(takes)
            if len(line) > width:
                line = line[: width - 3] + "..."
            lines.append(line)
        return "\n".join(lines)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart of the data flow (each edge labelled with the parameter)."""
        lines = ["flowchart TD"]
        for node in self.nodes.values():
            lines.append(f'    {_mid(node.name)}["{node.name}"]')
        for node in self.nodes.values():
            for param, ref in node.inputs.items():
                label = param if ref.output is None else f"{ref.output} -> {param}"
                lines.append(f"    {_mid(ref.node)} -->|{label}| {_mid(node.name)}")
        return "\n".join(lines)


def render_stored(graph: dict[str, Any], statuses: dict[str, str], width: int = 80) -> str:
    """A stored graph (``Graph.to_dict``) in topological order, each step with its status
    in the run and what it takes, lines at most ``width``."""
    nodes = graph.get("nodes", [])
    pad = min(max((len(n["name"]) for n in nodes), default=4), 24)
    lines = []
    for i, node in enumerate(nodes, 1):
        takes = [f"{p}={label}" for p, label in node.get("inputs", {}).items()]
        status = statuses.get(node["name"], "-")
        line = f"{i:>2}. {node['name']:<{pad}} {status:<8}"
        if takes:
            line += " <- " + ", ".join(takes)
        lines.append(line if len(line) <= width else line[: width - 3] + "...")
    return "\n".join(lines)


def stored_to_mermaid(graph: dict[str, Any], statuses: dict[str, str]) -> str:
    """A Mermaid flowchart of a stored graph, each step labelled with its status."""
    lines = ["flowchart TD"]
    names = [n["name"] for n in graph.get("nodes", [])]
    for name in names:
        status = statuses.get(name)
        lines.append(f'    {_mid(name)}["{name}{f" ({status})" if status else ""}"]')
    for node in graph.get("nodes", []):
        for param, label in node.get("inputs", {}).items():
            source = next((n for n in names if label == n or label.startswith(f"{n}.")), label)
            lines.append(f"    {_mid(source)} -->|{param}| {_mid(node['name'])}")
    return "\n".join(lines)


def _mid(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def output_refs(node: Node) -> list[OutputRef]:
    """The references to each output of ``node``."""
    if node.step.outputs is None:
        return [OutputRef(node.name)]
    return [OutputRef(node.name, o) for o in node.step.outputs]
