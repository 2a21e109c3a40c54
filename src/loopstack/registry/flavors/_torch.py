"""PyTorch modules on the CPU: TorchScript, or a state dict plus an importable class.

A plain ``nn.Module`` is compiled with ``torch.jit.script`` (``torch.jit.trace``
on ``sample_input`` when scripting fails) and loads without its Python class.
Wrapping it as ``TorchStateDict(module, init_kwargs)`` saves only the weights
and records ``"module:Class"`` and the constructor's keyword arguments; loading
imports the class, builds it and reads the weights with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loopstack.errors import Invalid

from ._flavor import Flavor
from ._inputs import as_frame_or_array
from ._requirements import distributions_of, pin

__all__ = ["TorchFlavor", "TorchStateDict"]

_SCRIPT_FILE = "model.pt"
_STATE_FILE = "state_dict.pt"


@dataclass(frozen=True)
class TorchStateDict:
    """Package ``module`` as its state dict, rebuilt at load time as ``Class(**init_kwargs)``.

    >>> # package_model(TorchStateDict(net, {"n_features": 4}), dest)   # doctest: +SKIP
    """

    module: Any
    init_kwargs: Mapping[str, Any] = field(default_factory=dict)


def _is_module(model: object) -> bool:
    if "torch" not in sys.modules:
        return False
    import torch

    return isinstance(model, torch.nn.Module)


def _class_path(cls: type) -> str:
    path = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise Invalid(
            f"a state-dict model needs a class importable as 'module:Class'; got {path} "
            "(define the class in a module, or package the module itself as TorchScript)",
            field="model",
        )
    return path


def _import_class(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise Invalid(
            f"this model's class {path} cannot be imported ({exc}); install the package that "
            "defines it",
            field="model",
        ) from exc
    return obj


@contextlib.contextmanager
def _torchscript_deprecation_silenced() -> Iterator[None]:
    # torch 2.10+ deprecates TorchScript in favour of torch.export, but TorchScript is still
    # the format that loads without the model's Python class: the choice is deliberate.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`?torch\.jit\.\w+`? is deprecated", category=DeprecationWarning
        )
        yield


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(":")


def _first_parameter_dtype(module: Any) -> Any:
    for parameter in module.parameters():
        return parameter.dtype
    return None


def _as_tensor(module: Any, inputs: Any) -> Any:
    import torch

    array = as_frame_or_array(inputs)
    array = np.ascontiguousarray(array.to_numpy() if hasattr(array, "to_numpy") else array)
    if not array.flags.writeable:  # pandas hands out read-only views; torch wants to own one
        array = array.copy()
    tensor = torch.from_numpy(array)
    dtype = _first_parameter_dtype(module)
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor


class TorchFlavor(Flavor):
    """``torch.nn.Module`` (as TorchScript) and ``TorchStateDict`` (weights + class path)."""

    name = "pytorch"

    def matches(self, model: object) -> bool:
        return isinstance(model, TorchStateDict) or _is_module(model)

    def save(self, model: Any, directory: Path, *, sample_input: Any = None) -> dict[str, Any]:
        import torch

        if isinstance(model, TorchStateDict):
            return self._save_state_dict(model, directory)
        if not _is_module(model):
            raise Invalid(
                "the pytorch flavor packages a torch.nn.Module or TorchStateDict; "
                f"got {type(model).__name__}",
                field="flavor",
            )
        model = model.to("cpu").eval()
        with _torchscript_deprecation_silenced():
            try:
                compiled, method = torch.jit.script(model), "script"
            except Exception as script_error:  # scripting fails on much ordinary Python
                if sample_input is None:
                    raise Invalid(
                        f"torch.jit.script could not compile {type(model).__name__} "
                        f"({_first_line(script_error)}); pass sample_input so it can be traced, "
                        "or wrap it as TorchStateDict",
                        field="model",
                    ) from script_error
                with torch.no_grad():
                    compiled = torch.jit.trace(model, _as_tensor(model, sample_input))
                method = "trace"
            torch.jit.save(compiled, str(directory / _SCRIPT_FILE))
        return {"format": "torchscript", "method": method, "file": _SCRIPT_FILE}

    def _save_state_dict(self, model: TorchStateDict, directory: Path) -> dict[str, Any]:
        import torch

        if not _is_module(model.module):
            raise Invalid(
                f"TorchStateDict needs a torch.nn.Module; got {type(model.module).__name__}",
                field="model",
            )
        path = _class_path(type(model.module))
        if _import_class(path) is not type(model.module):
            raise Invalid(
                f"importing {path} gives a different class than the module's own",
                field="model",
            )
        kwargs = dict(model.init_kwargs)
        try:
            json.dumps(kwargs)
        except TypeError as exc:
            raise Invalid(
                f"init_kwargs must be JSON values (numbers, strings, lists, dicts); {exc}",
                field="init_kwargs",
            ) from exc
        state = {k: v.detach().cpu() for k, v in model.module.state_dict().items()}
        try:  # rebuild now, so a package that cannot load is never written
            type(model.module)(**kwargs).load_state_dict(state)
        except (TypeError, RuntimeError) as exc:
            raise Invalid(
                f"{path}(**{kwargs}) does not accept the module's state dict ({exc})",
                field="init_kwargs",
            ) from exc
        torch.save(state, str(directory / _STATE_FILE))
        return {"format": "state_dict", "class": path, "init_kwargs": kwargs, "file": _STATE_FILE}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        import torch

        path = str(directory / str(meta["file"]))
        if meta["format"] == "torchscript":
            with _torchscript_deprecation_silenced():
                return torch.jit.load(path, map_location="cpu").eval()
        module = _import_class(str(meta["class"]))(**meta["init_kwargs"])
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return module.eval()

    def requirements(self, model: Any) -> list[str]:
        pins = {pin("torch")}
        if isinstance(model, TorchStateDict):  # the class's own package is needed too
            pins.update(distributions_of([model.module]))
        return sorted(pins)

    def predict(self, loaded: Any, inputs: Any) -> np.ndarray:
        import torch

        with torch.no_grad():
            output = loaded(_as_tensor(loaded, inputs))
        return np.asarray(output.detach().cpu().numpy())

    def has_proba(self, loaded: Any) -> bool:
        return False
