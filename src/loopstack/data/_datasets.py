"""Dataset versions and validation results over the SQL metadata and artifact stores.

Registering hashes the canonical Parquet encoding first: the same content registered
again returns the version that holds it. The Parquet bytes go through the artifact
store (content-addressed, verified on read) before the version's row is written, and
each row is written with its audit event in one transaction.
"""

from __future__ import annotations

import builtins
import json
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.exc import IntegrityError

from loopstack.data._digest import file_sha256 as _sha256
from loopstack.data._entities import DatasetVersion
from loopstack.data._store import DatasetBackend, register_input
from loopstack.errors import Invalid, NotFound
from loopstack.store import Stores
from loopstack.store.metadata.schema import DatasetVersion as DatasetRow
from loopstack.store.metadata.schema import ValidationResult as ResultRow
from loopstack.tracking._entities import now_ms

if TYPE_CHECKING:
    from loopstack.data._report import ValidationReport

__all__ = ["DatasetStore"]

DV, VR = cast(Table, DatasetRow.__table__), cast(Table, ResultRow.__table__)
_verified: set[Path] = set()


_REGISTER_PHASES = ("reading", "writing and hashing", "profiling", "uploading")


class DatasetStore(DatasetBackend):
    """Versions of named datasets, and validation results, in one project (SQL + artifacts)."""

    def __init__(
        self,
        stores: Stores,
        *,
        actor: str = "local",
        project_id: int = 0,
        cache_dir: Path | None = None,
    ) -> None:
        self.stores = stores
        self.db = stores.db
        self.actor = actor
        self.project_id = project_id
        self.cache_dir = cache_dir

    def _version(self, row: Any) -> DatasetVersion:
        return DatasetVersion(
            row.name,
            row.version,
            row.digest,
            row.path,
            json.loads(row.files),
            json.loads(row.schema),
            json.loads(row.profile),
            row.num_rows,
            row.num_columns,
            row.source_uri,
            row.description,
            row.created_by,
            row.created_at,
            row.project_id,
            self,
        )

    def _by_digest(self, conn: Connection, name: str, digest: str) -> Any:
        return conn.execute(
            select(DV).where(
                DV.c.project_id == self.project_id, DV.c.name == name, DV.c.digest == digest
            )
        ).first()

    # -- datasets -------------------------------------------------------------------------
    def register(
        self, name: str, data: Any, *, description: str = "", source_uri: str | None = None
    ) -> DatasetVersion:
        """Store ``data`` as a new version of ``name``, or return the version that has it."""
        from loopstack._progress import phases
        from loopstack.data._digest import write_canonical
        from loopstack.data._profile import profile_table

        with (
            phases(f"registering dataset {str(name)[:60]}", _REGISTER_PHASES) as step,
            tempfile.TemporaryDirectory(prefix="loopstack-dataset-") as tmp,
        ):
            step("reading")
            name, table, source_uri = register_input(name, data, description, source_uri)
            step("writing and hashing")
            local = Path(tmp) / "data.parquet"
            digest = write_canonical(table, local)
            found = self.db.read(lambda c: self._by_digest(c, name, digest))
            if found is not None:
                return self._version(found)
            step("profiling")
            profile = profile_table(table)
            schema = {"columns": [{"name": f.name, "type": str(f.type)} for f in table.schema]}
            logical = f"datasets/{self.project_id}/{name}/{digest}/data.parquet"
            step("uploading")
            self.stores.artifacts.log_file(
                local, logical, actor=self.actor, project_id=self.project_id
            )
        values = {
            "project_id": self.project_id,
            "name": name,
            "digest": digest,
            "path": logical,
            "files": json.dumps({"data.parquet": digest}),
            "schema": json.dumps(schema),
            "profile": json.dumps(profile),
            "num_rows": table.num_rows,
            "num_columns": table.num_columns,
            "source_uri": source_uri or "",
            "description": description,
            "created_by": self.actor,
        }

        def run(conn: Connection) -> Any:
            existing = self._by_digest(conn, name, digest)
            if existing is not None:
                return existing
            latest = conn.execute(
                select(func.max(DV.c.version)).where(
                    DV.c.project_id == self.project_id, DV.c.name == name
                )
            ).scalar()
            version = (latest or 0) + 1
            conn.execute(DV.insert().values(version=version, created_at=now_ms(), **values))
            return self._by_digest(conn, name, digest)

        for attempt in range(3):  # a concurrent register may take the same version number
            try:
                row = self.db.write(
                    run,
                    actor=self.actor,
                    action="dataset.register",
                    object_type="dataset",
                    object_id=lambda r: f"{r.name}/{r.version}",
                    payload={"name": name, "digest": digest, "num_rows": table.num_rows},
                    project_id=self.project_id,
                )
                return self._version(row)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, name: str, version: int | str | None = None) -> DatasetVersion:
        """A version by number; ``None`` or ``"latest"`` for the newest."""
        if version is None or version == "latest":
            number = None
        else:
            try:
                number = int(version)
            except (TypeError, ValueError):
                raise Invalid(
                    f"a dataset version must be an integer or 'latest'; got {version!r} instead",
                    field="version",
                ) from None

        def run(conn: Connection) -> Any:
            q = select(DV).where(DV.c.project_id == self.project_id, DV.c.name == name)
            q = (
                q.where(DV.c.version == number)
                if number is not None
                else q.order_by(DV.c.version.desc()).limit(1)
            )
            return conn.execute(q).first()

        row = self.db.read(run)
        if row is None:
            raise NotFound(
                f"dataset {name!r} has no version {number}"
                if number is not None
                else f"no dataset named {name!r}"
            )
        return self._version(row)

    def list(self, name: str | None = None) -> list[DatasetVersion]:
        """Every version of ``name``, newest first; without a name, each dataset's newest."""

        def run(conn: Connection) -> list[Any]:
            q = select(DV).where(DV.c.project_id == self.project_id)
            if name is not None:
                return list(
                    conn.execute(q.where(DV.c.name == name).order_by(DV.c.version.desc())).all()
                )
            newest = (
                select(DV.c.name, func.max(DV.c.version).label("v"))
                .where(DV.c.project_id == self.project_id)
                .group_by(DV.c.name)
                .subquery()
            )
            return list(
                conn.execute(
                    q.join(
                        newest, (DV.c.name == newest.c.name) & (DV.c.version == newest.c.v)
                    ).order_by(DV.c.name)
                ).all()
            )

        return [self._version(r) for r in self.db.read(run)]

    def local_path(self, dv: DatasetVersion) -> Path:
        """A verified local copy of the version's Parquet file (the blob itself when local)."""
        from loopstack.store.artifacts import LocalBlobStore

        blobs = self.stores.artifacts.blobs
        if isinstance(blobs, LocalBlobStore):  # the blob is the Parquet file: read it in place
            candidate = blobs._path(dv.digest)
            if candidate in _verified:
                return candidate
            if candidate.is_file():
                if _sha256(candidate) == dv.digest:
                    _verified.add(candidate)
                    return candidate
                self.stores.artifacts.read_bytes(dv.artifact_path)  # raises ArtifactCorrupted
        cache = self.cache_dir or Path(tempfile.gettempdir()) / "loopstack-datasets"
        target = cache / dv.digest / "data.parquet"
        if target in _verified or (target.is_file() and _sha256(target) == dv.digest):
            _verified.add(target)
            return target
        self.stores.artifacts.download(dv.artifact_path, target.parent)
        _verified.add(target)
        return target

    # -- validation results ---------------------------------------------------------------
    def save_validation(self, report: ValidationReport, *, run_id: str | None = None) -> str:
        """Store a report (audited); sets and returns its ``result_id``."""
        result_id = uuid.uuid4().hex
        name, _, version = (report.dataset or "").partition("/")
        now = now_ms()
        values = {
            "result_id": result_id,
            "project_id": self.project_id,
            "suite_name": report.suite,
            "suite": json.dumps(report.suite_definition, default=str),
            "dataset_name": name or None,
            "dataset_version": int(version) if version else None,
            "run_id": run_id,
            "passed": report.passed,
            "results": json.dumps([r.to_dict() for r in report.results], default=str),
            "num_rows": report.num_rows,
            "created_by": self.actor,
            "created_at": now,
        }
        self.db.write(
            lambda c: c.execute(VR.insert().values(**values)),
            actor=self.actor,
            action="validation.record",
            object_type="validation",
            object_id=result_id,
            payload={
                "suite": report.suite,
                "passed": report.passed,
                "dataset": report.dataset,
                "run_id": run_id,
                "failures": [r.name for r in report.failures],
            },
            project_id=self.project_id,
        )
        report.result_id, report.created_at = result_id, now
        return result_id

    def get_validation(self, result_id: str) -> ValidationReport:
        """A stored report by its ``result_id``."""
        from loopstack.data._report import ValidationReport
        from loopstack.data._result import CheckResult

        row = self.db.read(
            lambda c: c.execute(
                select(VR).where(VR.c.result_id == result_id, VR.c.project_id == self.project_id)
            ).first()
        )
        if row is None:
            raise NotFound(f"no validation result {result_id!r}")
        dataset = f"{row.dataset_name}/{row.dataset_version}" if row.dataset_name else None
        return ValidationReport(
            row.suite_name,
            [CheckResult.from_dict(r) for r in json.loads(row.results)],
            row.num_rows,
            dataset,
            row.result_id,
            row.created_at,
            json.loads(row.suite),
        )

    def list_validations(
        self, *, dataset: str | None = None, run_id: str | None = None
    ) -> builtins.list[ValidationReport]:
        """Stored results, newest first, optionally for one dataset name or run."""
        q = select(VR.c.result_id).where(VR.c.project_id == self.project_id)
        if dataset is not None:
            q = q.where(VR.c.dataset_name == dataset)
        if run_id is not None:
            q = q.where(VR.c.run_id == run_id)
        ids = self.db.read(lambda c: c.execute(q.order_by(VR.c.created_at.desc())).scalars().all())
        return [self.get_validation(i) for i in ids]
