"""``TrackingClient``: the whole tracking API over one store (SQL directly, or a server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.config import Settings, settings
from loopstack.errors import Invalid

if TYPE_CHECKING:
    from loopstack.store.artifacts import FileInfo
from loopstack.tracking._arguments import mapping, order_by_list, text, whole
from loopstack.tracking._entities import (
    MAX_PARAMS_TAGS_PER_BATCH,
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunStatus,
    now_ms,
)
from loopstack.tracking._store import TrackingStore

__all__ = ["TrackingClient", "runs_to_frame"]


def _store_for(uri: str | None, config: Settings) -> TrackingStore:
    if uri and uri.startswith(("http://", "https://")):
        from loopstack.tracking._rest_store import RestTrackingStore

        return RestTrackingStore.shared(uri, token=config.token, project=config.project)
    from dataclasses import replace

    from loopstack.auth import project_in_use
    from loopstack.store import open_stores
    from loopstack.tracking._sql_store import SqlTrackingStore

    if uri:
        config = replace(config, db_url=uri)
    stores = open_stores(config)
    return SqlTrackingStore(
        stores, actor=config.actor, project_id=project_in_use(stores.db, config)
    )


class TrackingClient:
    """Create experiments and runs, log to them, search them.

    >>> client = TrackingClient()                      # the configured store
    >>> run = client.create_run(client.set_experiment("demo"))
    """

    def __init__(
        self, tracking_uri: str | None = None, *, store: TrackingStore | None = None
    ) -> None:
        config = settings()
        self.store = store or _store_for(tracking_uri or config.tracking_uri, config)

    # -- experiments ----------------------------------------------------------------
    def create_experiment(self, name: str, tags: dict[str, str] | None = None) -> str:
        return self.store.create_experiment(name, tags=tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def set_experiment(self, name: str) -> str:
        """The id of the experiment called ``name``, created if it does not exist."""
        from loopstack.errors import AlreadyExists

        exp = self.store.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.store.create_experiment(name)
        except AlreadyExists:  # created concurrently by another process
            found = self.store.get_experiment_by_name(name)
            assert found is not None
            return found.experiment_id

    def search_experiments(
        self, *, view: str = "active", name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]:
        return self.store.search_experiments(
            view=view, name_like=name_like, max_results=max_results
        )

    # -- runs -----------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str = "0",
        *,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Run:
        return self.store.create_run(
            experiment_id,
            run_name=run_name,
            tags=tags,
            params={k: str(v) for k, v in (params or {}).items()},
        )

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def set_terminated(self, run_id: str, status: str = RunStatus.FINISHED) -> Run:
        return self.store.update_run(run_id, status=status, end_time=now_ms())

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: list[Metric] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        """Log metrics, params and tags; more params or tags than one write takes
        (``MAX_PARAMS_TAGS_PER_BATCH``, MLflow's 100) go in several, as MLflow's client
        splits them: each write is atomic, the whole call is not."""
        if metrics is not None and not isinstance(metrics, list):
            raise Invalid(
                f"metrics must be a list of Metric; got {type(metrics).__name__} instead",
                field="metrics",
            )
        pairs = [("param", k, str(v)) for k, v in mapping(params, "params").items()]
        pairs += [("tag", k, str(v)) for k, v in mapping(tags, "tags").items()]
        step = MAX_PARAMS_TAGS_PER_BATCH
        for start in range(0, max(len(pairs), 1), step):
            chunk = pairs[start : start + step]
            self.store.log_batch(
                run_id,
                metrics=metrics if start == 0 else None,
                params={k: v for kind, k, v in chunk if kind == "param"},
                tags={k: v for kind, k, v in chunk if kind == "tag"},
            )

    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None
    ) -> None:
        """One point, written now (the fluent API buffers; this does not)."""
        self.store.log_batch(run_id, metrics=[Metric(key, value, step, timestamp or now_ms())])

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.store.log_batch(run_id, params={key: str(value)})

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.store.log_batch(run_id, tags={key: str(value)})

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.delete_tag(run_id, key)

    def log_inputs(self, run_id: str, datasets: list[DatasetInput]) -> None:
        self.store.log_inputs(run_id, datasets)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.store.get_metric_history(run_id, key)

    def delete_run(self, run_id: str) -> None:
        self.store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self.store.restore_run(run_id)

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        *,
        order_by: list[str] | None = None,
        max_results: int = 1000,
        view: str = "active",
    ) -> list[Run]:
        """Every matching run, following pages up to ``max_results``."""
        filter_string = text(filter_string, "filter_string")
        order_by = order_by_list(order_by)
        max_results = whole(max_results, "max_results", low=1)
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        runs: list[Run] = []
        token = None
        while len(runs) < max_results:
            page, token = self.store.search_runs(
                experiment_ids,
                filter_string=filter_string,
                view=view,
                max_results=min(1000, max_results - len(runs)),
                order_by=order_by,
                page_token=token,
            )
            runs.extend(page)
            if not token:
                break
        return runs

    # -- artifacts ------------------------------------------------------------------
    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> None:
        self.store.log_artifact(run_id, Path(local_path), artifact_path)

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        return self.store.list_artifacts(run_id, path)

    def download_artifacts(self, run_id: str, path: str, dest: str | Path) -> Path:
        return self.store.download_artifacts(run_id, path, Path(dest))


def runs_to_frame(runs: list[Run]) -> Any:
    """A DataFrame with a row per run and ``metrics.*``, ``params.*``, ``tags.*`` columns."""
    import pandas as pd

    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "run_id": r.run_id,
            "experiment_id": r.experiment_id,
            "run_name": r.run_name,
            "status": r.status,
            "artifact_uri": r.artifact_uri,
            "start_time": pd.to_datetime(r.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(r.end_time, unit="ms", utc=True) if r.end_time else pd.NaT,
        }
        row.update({f"metrics.{k}": v for k, v in r.metrics.items()})
        row.update({f"params.{k}": v for k, v in r.params.items()})
        row.update({f"tags.{k}": v for k, v in r.tags.items() if k not in ("loopstack.packages",)})
        rows.append(row)
    base = [
        "run_id",
        "experiment_id",
        "run_name",
        "status",
        "artifact_uri",
        "start_time",
        "end_time",
    ]
    frame = pd.DataFrame(rows, columns=None if rows else base)
    if rows:
        rest = sorted(c for c in frame.columns if c not in base)
        frame = frame[base + rest]
    return frame
