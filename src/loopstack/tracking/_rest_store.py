"""Tracking store that talks to a loopstack server's native REST API (/api/v1)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from loopstack import errors
from loopstack.store.remote import HttpClient
from loopstack.tracking._entities import (
    DatasetInput,
    Experiment,
    Metric,
    Run,
    metric_value_from_json,
    metric_value_to_json,
    validate_metric,
)
from loopstack.tracking._store import TrackingStore

if TYPE_CHECKING:
    from loopstack.store.artifacts import FileInfo

__all__ = ["RestTrackingStore"]


class RestTrackingStore(TrackingStore):
    """Same behaviour as the SQL store; errors come back as the same exception classes."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.base_url = client.base_url

    @classmethod
    def shared(
        cls, base_url: str, *, token: str | None = None, project: str | None = None
    ) -> RestTrackingStore:
        """A store over the process's shared client for this server, token and project."""
        return cls(HttpClient.shared(base_url, token=token, project=project))

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self.client.call(method, path, **kw)

    # -- experiments ----------------------------------------------------------------
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        body = {"name": name, "artifact_location": artifact_location, "tags": tags or {}}
        return str(self._call("POST", "/experiments", json=body)["experiment_id"])

    def get_experiment(self, experiment_id: str) -> Experiment:
        return Experiment(**self._call("GET", f"/experiments/{quote(str(experiment_id))}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            return Experiment(**self._call("GET", f"/experiments/by-name/{quote(name)}"))
        except errors.NotFound:
            return None

    def search_experiments(
        self, *, view: str = "active", name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]:
        params: dict[str, Any] = {"view": view, "max_results": max_results}
        if name_like:
            params["name_like"] = name_like
        data = self._call("GET", "/experiments", params=params)
        return [Experiment(**e) for e in data["experiments"]]

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._call(
            "POST",
            f"/experiments/{quote(str(experiment_id))}/tags",
            json={"key": key, "value": value},
        )

    def delete_experiment(self, experiment_id: str) -> None:
        self._call("DELETE", f"/experiments/{quote(str(experiment_id))}")

    # -- runs -----------------------------------------------------------------------
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
        body = {
            "experiment_id": str(experiment_id),
            "run_name": run_name,
            "start_time": start_time,
            "tags": tags or {},
            "user_id": user_id,
            "params": params or {},
        }
        return Run.from_dict(self._call("POST", "/runs", json=body))

    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        end_time: int | None = None,
        metrics: list[Metric] | None = None,
    ) -> None:
        if metrics:
            self.log_batch(run_id, metrics=metrics)
        self._call("PATCH", f"/runs/{quote(run_id)}", json={"status": status, "end_time": end_time})

    def get_run(self, run_id: str) -> Run:
        return Run.from_dict(self._call("GET", f"/runs/{quote(run_id)}"))

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> Run:
        body = {"status": status, "end_time": end_time, "run_name": run_name}
        return Run.from_dict(self._call("PATCH", f"/runs/{quote(run_id)}", json=body))

    def delete_run(self, run_id: str) -> None:
        self._call("DELETE", f"/runs/{quote(run_id)}")

    def restore_run(self, run_id: str) -> None:
        self._call("POST", f"/runs/{quote(run_id)}/restore")

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: list[Metric] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        # Checked here too, so the error names the metric; JSON has no NaN, hence the strings.
        points = [
            Metric(*validate_metric(m.key, m.value, m.step, m.timestamp)) for m in metrics or []
        ]
        body = {
            "metrics": [{**asdict(m), "value": metric_value_to_json(m.value)} for m in points],
            "params": params or {},
            "tags": tags or {},
        }
        self._call("POST", f"/runs/{quote(run_id)}/batch", json=body)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("DELETE", f"/runs/{quote(run_id)}/tags/{quote(key)}")

    def log_inputs(self, run_id: str, datasets: list[DatasetInput]) -> None:
        self._call(
            "POST",
            f"/runs/{quote(run_id)}/inputs",
            json={"datasets": [asdict(d) for d in datasets]},
        )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        data = self._call("GET", f"/runs/{quote(run_id)}/metrics/{quote(key)}")
        return [
            Metric(m["key"], float(metric_value_from_json(m["value"])), m["step"], m["timestamp"])
            for m in data["metrics"]
        ]

    def search_runs(
        self,
        experiment_ids: list[str],
        *,
        filter_string: str = "",
        view: str = "active",
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        body = {
            "experiment_ids": [str(e) for e in experiment_ids],
            "filter": filter_string,
            "view": view,
            "max_results": max_results,
            "order_by": order_by or [],
            "page_token": page_token,
        }
        data = self._call("POST", "/runs/search", json=body)
        return [Run.from_dict(r) for r in data["runs"]], data.get("next_page_token")

    # -- artifacts ------------------------------------------------------------------
    def _upload(self, run_id: str, local: Path, dest: str) -> None:
        self._call("PUT", f"/runs/{quote(run_id)}/artifacts/{quote(dest)}", content=local)

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        local_path = Path(local_path)
        base = artifact_path.strip("/") if artifact_path else ""
        if local_path.is_file():
            dest = f"{base}/{local_path.name}" if base else local_path.name
            self._upload(run_id, local_path, dest)
        elif local_path.is_dir():
            root = base or local_path.name
            for f in sorted(p for p in local_path.rglob("*") if p.is_file()):
                self._upload(run_id, f, f"{root}/{f.relative_to(local_path).as_posix()}")
        else:
            raise errors.Invalid(
                f"expected a file or directory to log; got {str(local_path)!r}, "
                "which does not exist",
                field="local_path",
            )

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        from loopstack.store.artifacts import FileInfo

        data = self._call("GET", f"/runs/{quote(run_id)}/artifacts", params={"path": path})
        return [FileInfo(**f) for f in data["files"]]

    def _download_file(self, run_id: str, path: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.client.stream("GET", f"/runs/{quote(run_id)}/artifacts/{quote(path)}") as resp:
            part = target.with_name(target.name + ".part")
            try:
                with part.open("wb") as fh:
                    for chunk in resp.iter_bytes():
                        fh.write(chunk)
            except httpx.HTTPError as exc:
                part.unlink(missing_ok=True)
                # The server verifies a large file as it sends it: a stored copy that fails
                # verification is cut off, which the client sees as a broken body.
                raise errors.StoreUnavailable(
                    f"the download of {path!r} of run {run_id} from {self.base_url} broke off "
                    f"({exc}); the server's log says whether its stored copy failed verification"
                ) from exc
            part.replace(target)

    def download_artifacts(self, run_id: str, path: str, dest: Path) -> Path:
        path = path.strip("/")
        listing = self.list_artifacts(run_id, path) if path else self.list_artifacts(run_id)
        exact = [f for f in listing if f.path == path and not f.is_dir]
        if path and (exact or not listing):
            target = Path(dest) / Path(path).name
            self._download_file(run_id, path, target)
            return target
        root = Path(dest) / Path(path).name if path else Path(dest)
        stack = listing
        while stack:
            f = stack.pop()
            if f.is_dir:
                stack.extend(self.list_artifacts(run_id, f.path))
            else:
                rel = f.path[len(path) + 1 :] if path else f.path
                self._download_file(run_id, f.path, root / rel)
        return root
