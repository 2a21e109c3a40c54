"""loopstack: one platform for the whole life of a production ML model.

>>> import loopstack as ls
>>> with ls.start_run(experiment="churn", params={"lr": 0.1}) as run:
...     ls.log_metric("auc", 0.91, step=1)

``import loopstack`` stays light: each verb imports its package on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    **{
        name: "loopstack.tracking"
        for name in (
            "ActiveRun",
            "TrackingClient",
            "active_run",
            "compare_runs",
            "end_run",
            "flush",
            "get_run",
            "log_artifact",
            "log_artifacts",
            "log_input",
            "log_metric",
            "log_metrics",
            "log_param",
            "log_params",
            "search_runs",
            "set_experiment",
            "set_tag",
            "set_tags",
            "start_run",
        )
    },
    # ``get_registry``, not ``registry``: that name is the subpackage once it is imported.
    **{
        name: "loopstack.registry"
        for name in ("get_registry", "lineage", "load_model", "log_model")
    },
    **{
        name: "loopstack.features"
        for name in (
            "DataFrameSource",
            "Entity",
            "FeatureService",
            "FeatureStore",
            "FeatureView",
            "Field",
            "FileSource",
            "OnDemandFeatureView",
            "RequestSource",
            "SqlSource",
        )
    },
    **{
        name: "loopstack.data"
        for name in ("Suite", "get_dataset", "infer_suite", "list_datasets", "register_dataset")
    },
    **{name: "loopstack.pipelines" for name in ("checkpoint", "pipeline", "step")},
    "deployments": "loopstack.serving",
    "predict_batch": "loopstack.serving.batch",
    "set_project": "loopstack.config",
    **{
        name: "loopstack.errors"
        for name in (
            "AlreadyExists",
            "ArtifactCorrupted",
            "Conflict",
            "Forbidden",
            "Invalid",
            "LoopstackError",
            "NotFound",
            "Overloaded",
            "StoreUnavailable",
            "Tampered",
            "Unauthenticated",
            "ValidationFailed",
        )
    },
}

# subpackages reached as ``ls.<name>.<verb>`` (``ls.monitoring.drift``), imported on first use
_SUBPACKAGES = ("monitoring", "pipelines")

__all__ = sorted([*_EXPORTS, *_SUBPACKAGES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        package = import_module(f"loopstack.{name}")
        globals()[name] = package
        return package
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopstack' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def _log_model(run_id: str, model: Any, **options: Any) -> Any:
    from loopstack.registry import log_model

    return log_model(run_id, model, **options)


def _install_model_logger() -> None:
    # Tracking never imports the registry (the registry builds on tracking): this layer,
    # above both, hands run.log_model the registry's log_model, imported on first use.
    from loopstack.tracking._hooks import set_model_logger

    set_model_logger(_log_model)


_install_model_logger()


if TYPE_CHECKING:  # pragma: no cover
    from loopstack import monitoring, pipelines  # noqa: F401
    from loopstack.config import set_project  # noqa: F401
    from loopstack.data import (  # noqa: F401
        Suite,
        get_dataset,
        infer_suite,
        list_datasets,
        register_dataset,
    )
    from loopstack.errors import (  # noqa: F401
        AlreadyExists,
        ArtifactCorrupted,
        Conflict,
        Forbidden,
        Invalid,
        LoopstackError,
        NotFound,
        Overloaded,
        StoreUnavailable,
        Tampered,
        Unauthenticated,
    )
    from loopstack.features import (  # noqa: F401
        DataFrameSource,
        Entity,
        FeatureService,
        FeatureStore,
        FeatureView,
        Field,
        FileSource,
        OnDemandFeatureView,
        RequestSource,
        SqlSource,
    )
    from loopstack.pipelines import checkpoint, pipeline, step  # noqa: F401
    from loopstack.registry import get_registry, lineage, load_model, log_model  # noqa: F401
    from loopstack.serving import deployments  # noqa: F401
    from loopstack.serving.batch import predict_batch  # noqa: F401
    from loopstack.tracking import (  # noqa: F401
        ActiveRun,
        TrackingClient,
        active_run,
        compare_runs,
        end_run,
        flush,
        get_run,
        log_artifact,
        log_artifacts,
        log_input,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        search_runs,
        set_experiment,
        set_tag,
        set_tags,
        start_run,
    )
