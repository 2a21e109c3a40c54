"""The tracking store interface; implementations: SQL (direct) and REST (through a server)."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopstack.store.artifacts import FileInfo
from loopstack.tracking._entities import DatasetInput, Experiment, Metric, Run

__all__ = ["TrackingStore"]


class TrackingStore(abc.ABC):
    """Everything the tracking client needs from where runs are kept."""

    # -- experiments ----------------------------------------------------------------
    @abc.abstractmethod
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str: ...

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment: ...

    @abc.abstractmethod
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...

    @abc.abstractmethod
    def search_experiments(
        self, *, view: str = "active", name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]: ...

    @abc.abstractmethod
    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None: ...

    @abc.abstractmethod
    def delete_experiment(self, experiment_id: str) -> None: ...

    # -- runs -----------------------------------------------------------------------
    @abc.abstractmethod
    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None = None,
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        user_id: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Run:
        """A new RUNNING run, with its tags and params written in the same transaction."""

    @abc.abstractmethod
    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        end_time: int | None = None,
        metrics: list[Metric] | None = None,
    ) -> None:
        """Write the last metrics, then mark the run FINISHED, FAILED or KILLED."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run: ...

    @abc.abstractmethod
    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> Run: ...

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def restore_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def log_batch(
        self,
        run_id: str,
        *,
        metrics: list[Metric] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Write metrics, params and tags atomically: all land, or (on any bad value) none."""

    @abc.abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None: ...

    @abc.abstractmethod
    def log_inputs(self, run_id: str, datasets: list[DatasetInput]) -> None: ...

    @abc.abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def get_metric_histories(self, run_ids: list[str], key: str) -> dict[str, list[Metric]]:
        """The history of ``key`` in each of ``run_ids`` (NotFound for a run that does
        not exist); a store that can read them at once overrides this loop."""
        return {rid: self.get_metric_history(rid, key) for rid in dict.fromkeys(run_ids)}

    def get_metrics_histories(
        self, run_ids: list[str], keys: list[str] | None = None, *, max_keys: int = 20
    ) -> dict[str, dict[str, list[Metric]]]:
        """The histories of ``keys`` in each of ``run_ids``, by key then run (NotFound for
        a run that does not exist). ``keys=None``: the first ``max_keys`` metric keys, in
        order, that any of the runs has. A store that can read them at once overrides
        this loop."""
        if keys is None:
            have = {k for rid in dict.fromkeys(run_ids) for k in self.get_run(rid).data.metrics}
            keys = sorted(have)[:max_keys]
        return {k: self.get_metric_histories(run_ids, k) for k in dict.fromkeys(keys)}

    @abc.abstractmethod
    def search_runs(
        self,
        experiment_ids: list[str],
        *,
        filter_string: str = "",
        view: str = "active",
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]: ...

    # -- artifacts ------------------------------------------------------------------
    @abc.abstractmethod
    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        """Store a file or a whole directory under the run's artifacts."""

    @abc.abstractmethod
    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]: ...

    @abc.abstractmethod
    def download_artifacts(self, run_id: str, path: str, dest: Path) -> Path: ...
