"""``RestDatasetStore``: dataset versions and validation results through a loopstack server.

Registering canonicalises the table here (the same Parquet bytes the local store
writes), uploads them with their sha256, and the server re-checks the digest, profiles
the table and deduplicates by content. ``to_pandas()`` downloads the file once into
``$LOOPSTACK_HOME/cache/datasets/<digest>/`` and verifies it against the digest.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from loopstack.data._digest import file_sha256 as _sha256
from loopstack.data._entities import DatasetVersion
from loopstack.data._report import ValidationReport
from loopstack.data._store import DatasetBackend, register_input
from loopstack.errors import ArtifactCorrupted
from loopstack.store.remote import HttpClient

__all__ = ["RestDatasetStore"]


_PHASES = ("reading", "writing and hashing", "uploading")


class RestDatasetStore(DatasetBackend):
    """The dataset API over ``/api/v1/datasets`` and ``/api/v1/validations``."""

    def __init__(self, client: HttpClient, *, actor: str = "", cache_dir: Path | None = None):
        self.client = client
        self.actor = actor
        self.project_id = 0  # the server places each request in its project
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "loopstack-datasets"

    def _version(self, data: dict[str, Any]) -> DatasetVersion:
        return DatasetVersion(**data, _store=self)

    @staticmethod
    def _path(name: str) -> str:
        return f"/datasets/{quote(name, safe='')}"

    # -- datasets -------------------------------------------------------------------------
    def register(
        self, name: str, data: Any, *, description: str = "", source_uri: str | None = None
    ) -> DatasetVersion:
        """Upload the canonical Parquet encoding of ``data``; the server dedups by digest."""
        from loopstack._progress import phases
        from loopstack.data._digest import write_canonical

        with (
            phases(f"registering dataset {str(name)[:60]}", _PHASES) as step,
            tempfile.TemporaryDirectory(prefix="loopstack-dataset-") as tmp,
        ):
            step("reading")
            name, table, source_uri = register_input(name, data, description, source_uri)
            step("writing and hashing")
            local = Path(tmp) / "data.parquet"
            digest = write_canonical(table, local)
            step("uploading")
            answer = self.client.call(
                "POST",
                self._path(name) + "/versions",
                params={"digest": digest, "description": description, "source_uri": source_uri},
                content=local,
            )
        return self._version(answer)

    def get(self, name: str, version: int | str | None = None) -> DatasetVersion:
        """A version by number; ``None`` or ``"latest"`` for the newest."""
        which = "latest" if version is None else str(version)
        path = f"{self._path(name)}/versions/{quote(which, safe='')}"
        return self._version(self.client.call("GET", path))

    def list(self, name: str | None = None) -> builtins.list[DatasetVersion]:
        """Every version of ``name``, newest first; without a name, each dataset's newest."""
        answer = self.client.call("GET", "/datasets", params={"name": name})
        return [self._version(d) for d in answer["datasets"]]

    def local_path(self, dv: DatasetVersion) -> Path:
        """The version's Parquet file, downloaded once and verified against its digest."""
        target = self.cache_dir / dv.digest / "data.parquet"
        if target.is_file() and _sha256(target) == dv.digest:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        path = f"{self._path(dv.name)}/versions/{dv.version}/data"
        h = hashlib.sha256()
        with self.client.stream("GET", path) as resp, partial.open("wb") as fh:
            for chunk in resp.iter_bytes(1 << 20):
                h.update(chunk)
                fh.write(chunk)
        if h.hexdigest() != dv.digest:
            partial.unlink(missing_ok=True)
            raise ArtifactCorrupted(
                f"dataset {dv.name}/{dv.version} downloaded with sha256 {h.hexdigest()}; "
                f"expected {dv.digest}"
            )
        partial.replace(target)
        return target

    # -- validation results ---------------------------------------------------------------
    def save_validation(self, report: ValidationReport, *, run_id: str | None = None) -> str:
        """Store a report on the server; sets and returns its ``result_id``."""
        # json.dumps keeps NaN (a check may observe one), which httpx's json= refuses
        body = json.dumps({"report": report.to_wire(), "run_id": run_id}).encode()
        answer = self.client.call(
            "POST", "/validations", content=body, content_type="application/json"
        )
        report.result_id, report.created_at = answer["result_id"], answer["created_at"]
        return str(answer["result_id"])

    def get_validation(self, result_id: str) -> ValidationReport:
        """A stored report by its ``result_id``."""
        answer = self.client.call("GET", f"/validations/{quote(str(result_id), safe='')}")
        return ValidationReport.from_dict(answer)

    def list_validations(
        self, *, dataset: str | None = None, run_id: str | None = None
    ) -> builtins.list[ValidationReport]:
        """Stored results, newest first, optionally for one dataset name or run."""
        answer = self.client.call(
            "GET", "/validations", params={"dataset": dataset, "run_id": run_id}
        )
        return [ValidationReport.from_dict(r) for r in answer["validations"]]
