"""Any Python object with a ``predict`` method, pickled (with cloudpickle when installed).

Loading a pickle runs code chosen by whoever wrote it, which is why a package
is only unpickled after every file's sha256 has been checked.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import Any

from loopstack.errors import Invalid

from ._flavor import Flavor
from ._requirements import distributions_of, pin

__all__ = ["PyfuncFlavor"]

_FILE = "model.pkl"


class PyfuncFlavor(Flavor):
    """The fallback: anything with a callable ``predict``."""

    name = "pyfunc"

    def matches(self, model: object) -> bool:
        return callable(getattr(model, "predict", None))

    def save(self, model: Any, directory: Path, *, sample_input: Any = None) -> dict[str, Any]:
        if not self.matches(model):
            raise Invalid(
                f"the pyfunc flavor packages an object with a predict method; "
                f"got {type(model).__name__}, which has none",
                field="flavor",
            )
        path = directory / _FILE
        if importlib.util.find_spec("cloudpickle") is not None:
            import cloudpickle

            path.write_bytes(cloudpickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
            serializer = "cloudpickle"
        else:
            path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
            serializer = "pickle"
        return {
            "file": _FILE,
            "serializer": serializer,
            "pickle": True,
            "pickle_protocol": pickle.HIGHEST_PROTOCOL,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
        }

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        # cloudpickle writes ordinary pickles; its own reducers are imported on demand.
        with (directory / str(meta["file"])).open("rb") as stream:
            return pickle.load(stream)

    def requirements(self, model: Any) -> list[str]:
        pins = set(distributions_of([model]))
        if importlib.util.find_spec("cloudpickle") is not None:
            pins.add(pin("cloudpickle"))
        return sorted(pins)
