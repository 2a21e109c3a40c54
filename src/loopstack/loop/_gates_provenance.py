"""The gates about where a model and its data came from: the data validated, the lineage
complete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid
from loopstack.loop._gates_report import GateResult

if TYPE_CHECKING:
    import pandas as pd

    from loopstack.registry import ModelVersion
    from loopstack.store import Stores

__all__ = ["dataset_ref", "lineage_gate", "validation_gate"]


def dataset_ref(dataset_version: Any) -> tuple[str, int] | None:
    """(name, version) of a ``DatasetVersion``, ``"name/version"`` or ``"dataset:name/version"``."""
    if dataset_version is None:
        return None
    if hasattr(dataset_version, "name") and hasattr(dataset_version, "version"):
        return str(dataset_version.name), int(dataset_version.version)
    text = str(dataset_version).removeprefix("dataset:")
    name, sep, version = text.rpartition("/")
    if not sep or not name or not version.isdigit():
        raise Invalid(
            "the dataset_version must be a DatasetVersion or 'name/version'; "
            f"got {dataset_version!r} instead",
            field="dataset_version",
        )
    return name, int(version)


def validation_gate(
    stores: Stores, project_id: int, dataset_version: Any, suite: Any, data: pd.DataFrame
) -> GateResult:
    """The ``data_validation`` gate: ``suite`` run now (on the dataset version, else on
    ``data``), else the newest stored validation result of the dataset version."""
    from loopstack.data import DatasetStore

    gate = "data_validation"
    store = DatasetStore(stores, actor="loop", project_id=project_id)
    ref = dataset_ref(dataset_version)
    if suite is not None:
        target = store.get(*ref) if ref is not None else data
        report = suite.validate(target, store=store)
    elif ref is not None:
        wanted = f"{ref[0]}/{ref[1]}"
        found = [r for r in store.list_validations(dataset=ref[0]) if r.dataset == wanted]
        if not found:
            return GateResult(
                gate, False, f"dataset {wanted} has no validation result", {"dataset": wanted}
            )
        report = found[0]  # newest first
    else:
        return GateResult(
            gate, False, "validation is required but no dataset_version or suite was given", {}
        )
    evidence = report.as_evidence()
    if report.passed:
        return GateResult(
            gate, True, f"suite {report.suite!r} passed ({len(report.results)} checks)", evidence
        )
    names = ", ".join(r.name for r in report.failures)
    return GateResult(
        gate,
        False,
        f"suite {report.suite!r} failed {len(report.failures)} of {len(report.results)} "
        f"checks: {names}",
        evidence,
    )


def lineage_gate(stores: Stores, project_id: int, version: ModelVersion | None) -> GateResult:
    """The ``lineage`` gate: the version has a run, linked to it, with dataset inputs."""
    from loopstack.registry import SqlRegistry

    gate = "lineage"
    if version is None:
        return GateResult(
            gate, False, "the challenger is not a registered model version; no lineage", {}
        )
    evidence: dict[str, Any] = {"model_version": version.uri, "run_id": version.run_id}
    if not version.run_id:
        return GateResult(gate, False, f"{version.uri} was registered without a run", evidence)
    graph = SqlRegistry(stores, actor="loop", project_id=project_id).lineage(version)
    datasets = [n for n in graph.upstream if n.startswith(("dataset_version:", "dataset:"))]
    evidence.update(upstream=graph.upstream, datasets=datasets)
    if f"run:{version.run_id}" not in graph.upstream:
        return GateResult(
            gate, False, f"no lineage edge from run {version.run_id} to {version.uri}", evidence
        )
    if not datasets:
        return GateResult(gate, False, f"run {version.run_id} logged no dataset inputs", evidence)
    return GateResult(gate, True, f"run {version.run_id[:12]} <- {', '.join(datasets)}", evidence)
