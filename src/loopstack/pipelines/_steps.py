"""``@step``: a plain function that, called inside a pipeline body, adds a node to its graph.

Outside a pipeline body a step is the function it wraps. Inside one (while
``@pipeline`` traces the body) a call returns placeholders, ``OutputRef``, for the
outputs it will make at run time; the pipeline's own parameters are ``ParamRef``.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, overload

from loopstack.errors import Invalid, NotFound
from loopstack.pipelines._digest import canonical_json

__all__ = ["Node", "OutputRef", "ParamRef", "Step", "Tracer", "module_from_file", "step"]


@dataclass(frozen=True)
class OutputRef:
    """A placeholder for an output of a node (``output`` is None for a single output)."""

    node: str
    output: str | None = None

    @property
    def label(self) -> str:
        """``node`` or ``node.output``."""
        return self.node if self.output is None else f"{self.node}.{self.output}"

    def __iter__(self) -> typing.Iterator[Any]:
        raise Invalid(
            f"the output of step {self.node!r} is one value; declare "
            f"@step(outputs=(...)) to return several"
        )

    def _no_value(self, use: str) -> Invalid:
        return Invalid(
            f"the output of step {self.node!r} has no value while the pipeline is traced; "
            f"pass it to another step instead of {use} it"
        )

    def __bool__(self) -> bool:
        raise self._no_value("testing")

    def __str__(self) -> str:
        raise self._no_value("formatting")

    def __format__(self, spec: str) -> str:
        raise self._no_value("formatting")


@dataclass(frozen=True)
class ParamRef:
    """A placeholder for a pipeline parameter, resolved when the pipeline runs."""

    name: str

    def _no_value(self, use: str) -> Invalid:
        return Invalid(
            f"the pipeline parameter {self.name!r} has no value while the pipeline is "
            f"traced; pass it to a step instead of {use} it"
        )

    def __bool__(self) -> bool:
        raise self._no_value("testing")

    def __str__(self) -> str:
        raise self._no_value("formatting")

    def __format__(self, spec: str) -> str:
        raise self._no_value("formatting")


@dataclass
class Node:
    """One call of a step in a pipeline's graph."""

    name: str
    step: Step
    #: parameter -> the output it takes
    inputs: dict[str, OutputRef] = field(default_factory=dict)
    #: parameter -> a JSON literal or a ParamRef
    params: dict[str, Any] = field(default_factory=dict)

    def resolved_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The params with each pipeline parameter replaced by its value."""
        return {k: values[v.name] if isinstance(v, ParamRef) else v for k, v in self.params.items()}


class Tracer:
    """Collects the nodes while a pipeline body runs."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Node:
        name, n = step.name, 1
        while name in self.nodes:
            n += 1
            name = f"{step.name}_{n}"
        try:
            bound = inspect.signature(step.fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise Invalid(f"step {step.name!r} was called with the wrong arguments: {exc}") from exc
        node = Node(name, step)
        for param, value in bound.arguments.items():
            if isinstance(value, OutputRef):
                if value.node not in self.nodes:
                    raise Invalid(f"step {name!r} takes an output of {value.node!r}, not traced")
                node.inputs[param] = value
            elif isinstance(value, ParamRef):
                node.params[param] = value
            else:
                _no_placeholders(value, name, param)
                canonical_json(value, what=f"the argument {param!r} of step {name!r}")
                node.params[param] = value
        self.nodes[name] = node
        return node


def _no_placeholders(value: Any, node: str, param: str) -> None:
    items = value.values() if isinstance(value, dict) else value
    if isinstance(value, (list, tuple, dict)):
        for item in items:
            if isinstance(item, (OutputRef, ParamRef)):
                raise Invalid(
                    f"the argument {param!r} of step {node!r} holds a step output or pipeline "
                    f"parameter inside a {type(value).__name__}; pass it as its own argument"
                )
            _no_placeholders(item, node, param)


_TRACING: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "loopstack_pipeline_tracer", default=None
)


#: modules loaded from a file path (scripts, ``path/to/file.py:name`` entrypoints)
FILE_MODULE = "_loopstack_entry_"


def module_from_file(path: Path) -> ModuleType:
    """The module of the Python file ``path``, loaded once per process under a name of
    its own (a script's ``if __name__ == "__main__"`` block does not run)."""
    path = path.expanduser().resolve()
    name = FILE_MODULE + "".join(c if c.isalnum() else "_" for c in str(path))
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise NotFound(f"{str(path)!r} is not a Python file that can be loaded")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return module


def _script_file(module: str) -> str | None:
    """The file of a module that cannot be imported by name elsewhere (a script)."""
    found = sys.modules.get(module)
    if module == "__main__" or module.startswith(FILE_MODULE):
        return getattr(found, "__file__", None)
    return None


def _import_step(module: str, qualname: str, file: str | None = None) -> Step:
    try:
        target: Any = sys.modules.get(module) if module == "__main__" else None
        if target is None or not hasattr(target, qualname.split(".")[0]):
            try:
                target = importlib.import_module(module)
            except ImportError:
                if file is None:
                    raise
                target = module_from_file(Path(file))
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise NotFound(f"the step {module}:{qualname} cannot be imported: {exc}") from exc
    if not isinstance(target, Step):
        raise Invalid(f"{module}:{qualname} is not a step; got {type(target).__name__} instead")
    return target


class Step:
    """A function that is one step of a pipeline (made by ``@step``)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        retries: int = 0,
        backoff_s: float = 1.0,
        timeout_s: float | None = None,
        resources: Any = None,
        cache: bool = True,
        outputs: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        from loopstack.pipelines._executors import Resources

        if not callable(fn):
            raise Invalid(f"@step decorates a function; got {fn!r} instead")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise Invalid(f"the 'retries' parameter must be an int >= 0; got {retries!r} instead")
        if not isinstance(backoff_s, (int, float)) or backoff_s < 0:
            raise Invalid(f"the 'backoff_s' parameter must be >= 0; got {backoff_s!r} instead")
        if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise Invalid(f"the 'timeout_s' parameter must be > 0; got {timeout_s!r} instead")
        if outputs is not None:
            outputs = tuple(outputs)
            if not outputs or not all(isinstance(o, str) and o for o in outputs):
                raise Invalid(f"'outputs' must name each output; got {outputs!r} instead")
            if len(set(outputs)) != len(outputs):
                raise Invalid(f"'outputs' must not repeat a name; got {outputs!r} instead")
        self.fn = fn
        self.name = name or fn.__name__
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.timeout_s = timeout_s
        self.resources = Resources.of(resources)
        self.cache = bool(cache)
        self.outputs: tuple[str, ...] | None = outputs
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__qualname__ = getattr(fn, "__qualname__", self.name)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<step {self.name!r} ({self.__module__}:{self.__qualname__})>"

    def __reduce__(self) -> tuple[Any, ...]:
        # by reference: the worker imports the same step (by module, or a script by its path)
        return (_import_step, (self.__module__, self.__qualname__, _script_file(self.__module__)))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = _TRACING.get()
        if tracer is None:
            return self.fn(*args, **kwargs)
        node = tracer.add(self, args, kwargs)
        if self.outputs is None:
            return OutputRef(node.name)
        return tuple(OutputRef(node.name, o) for o in self.outputs)

    def hints(self) -> dict[str, Any]:
        """The function's resolved annotations (empty where they cannot be resolved)."""
        try:
            return typing.get_type_hints(self.fn)
        except Exception:  # noqa: BLE001 - a forward ref that does not resolve: unannotated
            return {}

    def return_types(self) -> dict[str | None, Any]:
        """The declared type of each output (key None for a single output)."""
        returned = self.hints().get("return")
        if self.outputs is None:
            return {None: returned}
        args = typing.get_args(returned) if typing.get_origin(returned) is tuple else ()
        if len(args) == len(self.outputs) and Ellipsis not in args:
            return dict(zip(self.outputs, args, strict=True))
        return dict.fromkeys(self.outputs)


@overload
def step(fn: Callable[..., Any], /) -> Step: ...
@overload
def step(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff_s: float = 1.0,
    timeout_s: float | None = None,
    resources: Any = None,
    cache: bool = True,
    outputs: tuple[str, ...] | list[str] | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...
def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff_s: float = 1.0,
    timeout_s: float | None = None,
    resources: Any = None,
    cache: bool = True,
    outputs: tuple[str, ...] | list[str] | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step; bare or with options.

    >>> @ls.step(retries=2, outputs=("train", "test"))
    ... def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]: ...
    """

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(
            f,
            name=name,
            retries=retries,
            backoff_s=backoff_s,
            timeout_s=timeout_s,
            resources=resources,
            cache=cache,
            outputs=outputs,
        )

    return wrap(fn) if fn is not None else wrap
