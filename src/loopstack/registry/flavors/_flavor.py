"""The one interface every model flavor implements.

A flavor knows how to recognise a model object, write it to a directory in
the framework's own format, read it back, and which packages that needs.
Frameworks are imported inside the methods, never at module import, so that
``import loopstack.registry.flavors`` pulls in none of them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["Flavor", "MlflowEntry"]


@dataclass(frozen=True)
class MlflowEntry:
    """How MLflow's own loaders read a package's files, for its ``MLmodel`` file.

    ``name`` and ``config`` are the native flavor entry (``sklearn: {pickled_model: ...}``);
    ``pyfunc`` is what MLflow's ``python_function`` entry needs besides the environment
    (``loader_module`` and ``data``/``model_path``), or ``None`` when MLflow's loader
    would predict differently from loopstack's and loopstack's own loader is named instead.
    """

    name: str
    config: dict[str, Any]
    pyfunc: dict[str, Any] | None


class Flavor(abc.ABC):
    """How one kind of model is recognised, saved, loaded and asked to predict.

    ``matches``, ``save``, ``load`` and ``requirements`` are the contract; the
    ``predict`` family has defaults that call the loaded object's own
    ``predict``/``predict_proba`` and is overridden where the framework's
    object does not have them (a TorchScript module, an ONNX session).
    """

    #: The name recorded in ``loopstack-model.json`` and accepted by ``package_model(flavor=...)``.
    name: ClassVar[str]

    @abc.abstractmethod
    def matches(self, model: object) -> bool:
        """Whether this flavor can package ``model`` (must not import the framework)."""

    @abc.abstractmethod
    def save(self, model: Any, directory: Path, *, sample_input: Any = None) -> dict[str, Any]:
        """Write ``model`` into ``directory``; return JSON-serialisable metadata for ``load``."""

    @abc.abstractmethod
    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        """Read back what ``save`` wrote, given the metadata it returned."""

    @abc.abstractmethod
    def requirements(self, model: Any) -> list[str]:
        """``"package==version"`` pins of what loading the saved model needs."""

    def mlflow_entry(self, meta: dict[str, Any]) -> MlflowEntry | None:
        """The MLflow flavor that reads what ``save`` wrote, or ``None`` if MLflow has none.

        Without one, the package's ``MLmodel`` names only loopstack's pyfunc loader.
        """
        return None

    def predict(self, loaded: Any, inputs: Any) -> np.ndarray:
        """Predictions of a model returned by ``load``."""
        return np.asarray(loaded.predict(inputs))

    def has_proba(self, loaded: Any) -> bool:
        """Whether the loaded model can give class probabilities."""
        return callable(getattr(loaded, "predict_proba", None))

    def predict_proba(self, loaded: Any, inputs: Any) -> np.ndarray:
        """Class probabilities of a model returned by ``load`` (only if ``has_proba``)."""
        return np.asarray(loaded.predict_proba(inputs))
