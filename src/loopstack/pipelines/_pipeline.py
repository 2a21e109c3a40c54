"""``@pipeline`` and ``Pipeline.from_steps``: a graph of steps, traced at definition time."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from loopstack.errors import Invalid, NotFound
from loopstack.pipelines._digest import canonical_json
from loopstack.pipelines._graph import Graph
from loopstack.pipelines._steps import (
    _TRACING,
    FILE_MODULE,
    Node,
    OutputRef,
    ParamRef,
    Step,
    Tracer,
    module_from_file,
)

if TYPE_CHECKING:
    from loopstack.pipelines._results import PipelineRun

__all__ = ["Pipeline", "load_entrypoint", "pipeline"]


class Pipeline:
    """A named graph of steps and the parameters it takes (made by ``@pipeline``)."""

    def __init__(
        self,
        name: str,
        graph: Graph,
        defaults: Mapping[str, Any],
        required: Sequence[str] = (),
        *,
        fn: Callable[..., Any] | None = None,
        module: str | None = None,
    ) -> None:
        self.name = name
        self.graph = graph
        self.defaults = dict(defaults)
        self.required = tuple(required)
        self.fn = fn
        self.module = module or (fn.__module__ if fn is not None else None)
        if fn is not None:
            self.__doc__ = fn.__doc__
            self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<pipeline {self.name!r}: {len(self.graph)} steps>"

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The run's params: the defaults overlaid with ``params``; Invalid on unknown,
        missing or non-JSON ones."""
        known = set(self.defaults) | set(self.required)
        unknown = sorted(set(params) - known)
        if unknown:
            raise Invalid(
                f"pipeline {self.name!r} takes the params {sorted(known)}; got unknown {unknown}"
            )
        missing = [p for p in self.required if p not in params]
        if missing:
            raise Invalid(f"pipeline {self.name!r} needs the params {missing}; none was given")
        values = {**self.defaults, **params}
        for key, value in values.items():
            canonical_json(value, what=f"the pipeline param {key!r}")
        return values

    def entrypoint(self) -> str:
        """``module:qualname`` (or ``path/to/file.py:qualname``) that re-imports this pipeline."""
        module = sys.modules.get(self.module or "")
        name = None
        if module is not None:
            if self.fn is not None and getattr(module, self.fn.__qualname__, None) is self:
                name = self.fn.__qualname__
            else:
                name = next((k for k, v in vars(module).items() if v is self), None)
        if module is None or name is None:
            raise NotFound(
                f"pipeline {self.name!r} is not bound to a name in its module "
                f"{self.module!r}, so it cannot be re-imported to resume; assign it to a "
                f"module-level name"
            )
        file = getattr(module, "__file__", None)
        if (module.__name__ == "__main__" or module.__name__.startswith(FILE_MODULE)) and file:
            return f"{Path(file).resolve()}:{name}"
        return f"{module.__name__}:{name}"

    def run(
        self,
        *,
        executor: str = "local",
        address: str | None = None,
        max_workers: int | None = None,
        on_event: Callable[[str, str, str], None] | None = None,
        **params: Any,
    ) -> PipelineRun:
        """Run the pipeline with ``params``; the finished run (StepFailed if a step fails).

        ``on_event(step, status, message)`` hears each step's progress as it happens.

        >>> run = training.run(rows=2000)
        >>> run.steps["train"].status
        'FINISHED'
        """
        from loopstack.pipelines._runner import run_pipeline

        return run_pipeline(
            self,
            params,
            executor=executor,
            address=address,
            max_workers=max_workers,
            on_event=on_event,
        )

    @classmethod
    def from_steps(cls, name: str, steps: Sequence[Step]) -> Pipeline:
        """A pipeline wired by name: a step's parameter named like another step (or one of
        its outputs) takes that output; every other parameter is a pipeline param (its
        default, if JSON, becomes the pipeline's).

        >>> Pipeline.from_steps("etl", [extract, transform, load])
        """
        if not isinstance(name, str) or not name:
            raise Invalid(f"a pipeline needs a name; got {name!r} instead")
        by_name: dict[str, Step] = {}
        for s in steps:
            if not isinstance(s, Step):
                raise Invalid(f"from_steps takes @step functions; got {s!r} instead")
            if s.name in by_name:
                raise Invalid(f"two steps are named {s.name!r}; give one another name")
            by_name[s.name] = s
        producers: dict[str, OutputRef] = {}
        for s in by_name.values():
            for out in s.outputs or [None]:
                key = out or s.name
                if key in producers:
                    raise Invalid(f"two steps make an output named {key!r}")
                producers[key] = OutputRef(s.name, out)
        defaults: dict[str, Any] = {}
        required: list[str] = []
        nodes = []
        for s in by_name.values():
            node = Node(s.name, s)
            for param in inspect.signature(s.fn).parameters.values():
                ref = producers.get(param.name)
                if ref is not None and ref.node != s.name:
                    node.inputs[param.name] = ref
                    continue
                node.params[param.name] = ParamRef(param.name)
                if param.default is inspect.Parameter.empty:
                    required.append(param.name)
                else:
                    canonical_json(param.default, what=f"the default of {param.name!r}")
                    defaults.setdefault(param.name, param.default)
            nodes.append(node)
        module = steps[0].__module__ if steps else None
        required = [r for r in dict.fromkeys(required) if r not in defaults]
        return cls(name, Graph(nodes), defaults, required, module=module)


def _trace(fn: Callable[..., Any], name: str) -> Pipeline:
    signature = inspect.signature(fn)
    defaults: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise Invalid(f"pipeline {name!r} must name its params; got *{param.name}")
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        else:
            canonical_json(param.default, what=f"the pipeline param {param.name!r}'s default")
            defaults[param.name] = param.default
    tracer = Tracer()
    token = _TRACING.set(tracer)
    try:
        fn(**{p: ParamRef(p) for p in signature.parameters})
    finally:
        _TRACING.reset(token)
    if not tracer.nodes:
        raise Invalid(f"pipeline {name!r} calls no step; a pipeline body calls @step functions")
    return Pipeline(name, Graph(tracer.nodes.values()), defaults, required, fn=fn)


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...
@overload
def pipeline(
    fn: None = None, /, *, name: str | None = None
) -> Callable[[Callable[..., Any]], Pipeline]: ...
def pipeline(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function a pipeline: its body is traced now, each step call a node.

    >>> @ls.pipeline
    ... def training(rows: int = 1000):
    ...     train(load(rows=rows))
    """

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return _trace(f, name or f.__name__)

    return wrap(fn) if fn is not None else wrap


def load_entrypoint(entrypoint: str) -> Pipeline:
    """The pipeline named by ``module:qualname`` or ``path/to/file.py:qualname``."""
    if not isinstance(entrypoint, str) or ":" not in entrypoint:
        raise Invalid(
            f"an entrypoint is 'module:name' or 'path/to/file.py:name'; got {entrypoint!r}"
        )
    where, _, qualname = entrypoint.rpartition(":")
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise NotFound(f"the pipeline file {str(path)!r} of {entrypoint!r} does not exist")
        module = module_from_file(path)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise NotFound(
                f"the module of the entrypoint {entrypoint!r} is missing: {exc}"
            ) from exc
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise NotFound(f"the entrypoint {entrypoint!r} names nothing in {where!r}")
    if not isinstance(target, Pipeline):
        raise Invalid(
            f"the entrypoint {entrypoint!r} must name a @pipeline; got "
            f"{type(target).__name__} instead"
        )
    return target
