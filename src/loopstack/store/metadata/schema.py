"""The metadata schema: one set of tables for every SQL backend.

Times are integer milliseconds since the epoch (as MLflow stores them), so
values round-trip through the MLflow REST API unchanged.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AliasMove",
    "ApprovalRequest",
    "ArtifactEntry",
    "AuditEvent",
    "AuditHead",
    "BanditArm",
    "Base",
    "Dataset",
    "EventSegment",
    "DatasetVersion",
    "DeploymentRevision",
    "DeploymentRow",
    "Experiment",
    "ExperimentTag",
    "FeatureEntity",
    "FeatureViewVersion",
    "LatestMetric",
    "LineageEdge",
    "LoggedModel",
    "LoggedModelMetric",
    "LoggedModelParam",
    "LoggedModelTag",
    "Materialization",
    "Metric",
    "ModelAlias",
    "ModelVersion",
    "ModelVersionTag",
    "Param",
    "Project",
    "ProjectMember",
    "RegisteredModel",
    "RegisteredModelTag",
    "Run",
    "RunInput",
    "RunModelLink",
    "RunTag",
    "Token",
    "User",
    "ValidationResult",
]

_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class Experiment(Base):
    __tablename__ = "experiments"
    experiment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256))  # unique within its project (see below)
    # Added by migration 0002; no FOREIGN KEY clause because SQLite cannot add one to an
    # existing table without rebuilding it (which would cascade-delete its runs).
    project_id: Mapped[int] = mapped_column(Integer, server_default=text("0"), index=True)
    __table_args__ = (Index("uq_experiments_project_name", "project_id", "name", unique=True),)
    artifact_location: Mapped[str] = mapped_column(String(1000))
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active")
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class ExperimentTag(Base):
    __tablename__ = "experiment_tags"
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    __tablename__ = "runs"
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active")
    deleted_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    artifact_uri: Mapped[str] = mapped_column(String(1000))
    user_id: Mapped[str] = mapped_column(String(256))
    parent_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    #: an experiment's runs newest first (the runs page) walk this index, not a sort
    __table_args__ = (Index("ix_runs_experiment_start", "experiment_id", "start_time"),)


class Param(Base):
    __tablename__ = "params"
    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    #: a param filter or order by reads this index (on PostgreSQL partial: a btree entry
    #: holds ~2.7 kB and a value may be 6,000 characters); there, the runs whose value is
    #: longer are found by the second, small index (partial everywhere)
    __table_args__ = (
        Index(
            "ix_params_key_value_run",
            "key",
            "value",
            "run_id",
            postgresql_where=text("length(value) <= 1000"),
        ),
        Index(
            "ix_params_key_long_run",
            "key",
            "run_id",
            postgresql_where=text("length(value) > 1000"),
            sqlite_where=text("length(value) > 1000"),
        ),
    )


class RunTag(Base):
    __tablename__ = "run_tags"
    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(Base):
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Float(precision=53))
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    #: SQLite stores a NaN as NULL: a NaN point is value 0 with this flag (as in MLflow)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)


class LatestMetric(Base):
    """The newest point of each (run, key): highest step, then latest timestamp (as MLflow)."""

    __tablename__ = "latest_metrics"
    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Float(precision=53))
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    #: SQLite stores a NaN as NULL: a NaN point is value 0 with this flag (as in MLflow)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    #: a metric filter or order by reads this index, not one lookup per run
    __table_args__ = (
        Index("ix_latest_metrics_key_nan_value_run", "key", "is_nan", "value", "run_id"),
    )


class Dataset(Base):
    __tablename__ = "datasets"
    dataset_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(500))
    digest: Mapped[str] = mapped_column(String(64))
    source_type: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    schema: Mapped[str | None] = mapped_column(Text, nullable=True)
    profile: Mapped[str | None] = mapped_column(Text, nullable=True)
    __table_args__ = (UniqueConstraint("experiment_id", "name", "digest"),)


class RunInput(Base):
    __tablename__ = "run_inputs"
    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.dataset_id", ondelete="CASCADE"), primary_key=True
    )
    tags: Mapped[str] = mapped_column(Text, default="{}")


class ArtifactEntry(Base):
    """A logical artifact path mapped to the content-addressed blob that holds its bytes."""

    __tablename__ = "artifact_entries"
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(128))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(1000))
    digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    #: the project the change happened in; NULL for changes outside any one project
    #: (users, tokens) and for events written before projects were recorded
    project_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    #: the id of the key whose HMAC ``hash`` is; NULL for the plain-sha256 (legacy)
    #: events written before the chain was keyed
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)


class AuditHead(Base):
    """One row: the newest link of the chain. Locking it serialises appends on every backend."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Token(Base):
    __tablename__ = "tokens"
    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    user: Mapped[str] = mapped_column(String(256))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: None: the token acts in every project its user belongs to.
    project_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# -- projects, users, roles ---------------------------------------------------------------
class Project(Base):
    """A tenant: experiments and models belong to one; members hold a role in it."""

    __tablename__ = "projects"
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: JSON: approval policy (protected aliases, self-approval, automatic approval on gates)
    policy: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[int] = mapped_column(BigInteger)


class User(Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    disabled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ProjectMember(Base):
    __tablename__ = "project_members"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE"), primary_key=True
    )
    user: Mapped[str] = mapped_column(
        ForeignKey("users.name", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32))


# -- model registry -----------------------------------------------------------------------
class RegisteredModel(Base):
    __tablename__ = "registered_models"
    model_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.project_id"), server_default=text("0"), index=True
    )
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("project_id", "name"),)


class RegisteredModelTag(Base):
    __tablename__ = "registered_model_tags"
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    flavor: Mapped[str] = mapped_column(String(64))
    #: logical artifact path of the package directory (manifest of ArtifactEntry rows)
    source: Mapped[str] = mapped_column(String(1000))
    #: JSON {relative file: sha256} recorded at registration; checked before every load
    files: Mapped[str] = mapped_column(Text, default="{}")
    #: sha256 over the sorted file digests: one digest for the whole package
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text, default="{}")
    requirements: Mapped[str] = mapped_column(Text, default="[]")
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.run_id", ondelete="SET NULL"), nullable=True, index=True
    )
    code_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default="READY")
    approval_state: Mapped[str] = mapped_column(String(16), default="none")
    onnx_max_abs_diff: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ModelVersionTag(Base):
    __tablename__ = "model_version_tags"
    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "version"],
            ["model_versions.model_id", "model_versions.version"],
            ondelete="CASCADE",
        ),
    )


class ModelAlias(Base):
    __tablename__ = "model_aliases"
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AliasMove(Base):
    """Every move of an alias, in order: where it pointed, where it went, who, why."""

    __tablename__ = "alias_moves"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE"), index=True
    )
    alias: Mapped[str] = mapped_column(String(128))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(256))
    ts: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text, default="")
    approval_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ApprovalRequest(Base):
    __tablename__ = "approval_requests"
    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    alias: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))  # pending | approved | rejected | cancelled
    requested_by: Mapped[str] = mapped_column(String(256))
    requested_at: Mapped[int] = mapped_column(BigInteger)
    evidence: Mapped[str] = mapped_column(Text, default="{}")
    decided_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    decided_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")


class LineageEdge(Base):
    """A directed edge of the lineage graph: ``src`` was used to make ``dst``."""

    __tablename__ = "lineage_edges"
    src_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    src_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    dst_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    dst_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    relation: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (Index("ix_lineage_edges_dst", "dst_type", "dst_id"),)


# -- data: dataset versions and validation results ------------------------------------------
class DatasetVersion(Base):
    """An immutable, content-addressed version of a named dataset (stored as Parquet)."""

    __tablename__ = "dataset_versions"
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True, server_default=text("0"))
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: sha256 of the content (identical content is the same version)
    digest: Mapped[str] = mapped_column(String(64))
    #: logical artifact path of the Parquet file(s)
    path: Mapped[str] = mapped_column(String(1000))
    files: Mapped[str] = mapped_column(Text, default="{}")
    schema: Mapped[str] = mapped_column(Text, default="{}")
    profile: Mapped[str] = mapped_column(Text, default="{}")
    num_rows: Mapped[int] = mapped_column(BigInteger)
    num_columns: Mapped[int] = mapped_column(Integer)
    source_uri: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("project_id", "name", "digest"),)


class ValidationResult(Base):
    __tablename__ = "validation_results"
    result_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, server_default=text("0"), index=True)
    suite_name: Mapped[str] = mapped_column(String(256))
    suite: Mapped[str] = mapped_column(Text, default="{}")
    dataset_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    dataset_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    #: JSON: every check with its outcome, observed value, expectation, sample rows
    results: Mapped[str] = mapped_column(Text, default="[]")
    num_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)


# -- feature store ----------------------------------------------------------------------------
class FeatureEntity(Base):
    __tablename__ = "feature_entities"
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True, server_default=text("0"))
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    join_keys: Mapped[str] = mapped_column(Text)  # JSON list
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class FeatureViewVersion(Base):
    """Every applied version of a feature view's definition (the newest is current)."""

    __tablename__ = "feature_views"
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True, server_default=text("0"))
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), default="batch")  # batch | on_demand
    #: JSON: entities, timestamp field, schema, source, ttl, description, tags, ...
    definition: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(256), default="")
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Materialization(Base):
    __tablename__ = "feature_materializations"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    view_name: Mapped[str] = mapped_column(String(128), index=True)
    view_version: Mapped[int] = mapped_column(Integer)
    start_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # ms, None: beginning
    end_ts: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    online_url: Mapped[str] = mapped_column(String(1000), default="")
    state: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LoggedModel(Base):
    """An MLflow 3 logged model: files under its own location in an experiment."""

    __tablename__ = "logged_models"
    model_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(250))
    artifact_location: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(32))
    status_message: Mapped[str] = mapped_column(Text, default="")
    model_type: Mapped[str] = mapped_column(String(500), default="")
    source_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    creator: Mapped[str] = mapped_column(String(256))
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active")
    creation_timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    last_updated_timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class LoggedModelParam(Base):
    __tablename__ = "logged_model_params"
    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LoggedModelTag(Base):
    __tablename__ = "logged_model_tags"
    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LoggedModelMetric(Base):
    """A metric point of a logged model (logged to a run with ``model_id`` set)."""

    __tablename__ = "logged_model_metrics"
    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_name: Mapped[str] = mapped_column(String(500), primary_key=True, default="")
    dataset_digest: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    value: Mapped[float] = mapped_column(Float(precision=53))
    #: a NaN is stored as value 0 with this flag (SQLite reads a NaN REAL back as NULL)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class RunModelLink(Base):
    """A logged model a run produced (``output``, at a step) or used (``input``)."""

    __tablename__ = "run_model_links"
    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, default=0)


# -- event log --------------------------------------------------------------------------------
class EventSegment(Base):
    """One Parquet segment of an append-only event stream (predictions, feedback, ...).

    Rows are written without an audit event: the event log carries high-rate
    data, the audit chain only state changes. ``min_ts``/``max_ts`` bound the
    segment's ``ts`` column in epoch milliseconds (floor and ceiling), so a read
    opens only the segments that overlap its window.
    """

    __tablename__ = "event_segments"
    __table_args__ = (Index("ix_event_segments_stream_max_ts", "project_id", "stream", "max_ts"),)
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    stream: Mapped[str] = mapped_column(String(128))
    min_ts: Mapped[int] = mapped_column(BigInteger)
    max_ts: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    #: sha256 of the segment's Parquet bytes in the blob store
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


# -- serving: deployments (every revision kept) and bandit state -------------------------
class DeploymentRow(Base):
    """An endpoint's current deployment: its policy and arms (JSON) at its latest revision."""

    __tablename__ = "deployments"
    deployment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(16))
    policy: Mapped[str] = mapped_column(String(16))
    #: JSON {"arms": [...], "options": {...}}: what the latest revision holds
    config: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("project_id", "name"),)


class DeploymentRevision(Base):
    """Every revision of a deployment, as it was: what changed it, who, when."""

    __tablename__ = "deployment_revisions"
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.deployment_id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    action: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(16))
    policy: Mapped[str] = mapped_column(String(16))
    config: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(256))
    ts: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str] = mapped_column(Text, default="")


class BanditArm(Base):
    """A bandit arm's learned state: counters a reward bumps with a plain UPDATE."""

    __tablename__ = "bandit_state"
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.deployment_id", ondelete="CASCADE"), primary_key=True
    )
    arm: Mapped[str] = mapped_column(String(64), primary_key=True)
    pulls: Mapped[int] = mapped_column(BigInteger, default=0)
    reward_sum: Mapped[float] = mapped_column(Float(precision=53), default=0.0)
    #: Beta posterior: alpha = 1 + successes, beta = 1 + failures
    successes: Mapped[float] = mapped_column(Float(precision=53), default=0.0)
    failures: Mapped[float] = mapped_column(Float(precision=53), default=0.0)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AlertRuleRow(Base):
    """An alert rule of a project: its definition as JSON (``AlertRule.to_dict``)."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    rule_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(256))
    definition: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AlertRuleState(Base):
    """Where a rule stands between evaluation windows (times in epoch milliseconds).

    Updated every window without an audit event (high-rate data); the alerts it
    fires and resolves are audited and kept in ``alert_events``.
    """

    __tablename__ = "alert_rule_state"
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("alert_rules.rule_id", ondelete="CASCADE"), primary_key=True
    )
    breaches: Mapped[int] = mapped_column(Integer, default=0)
    clean: Mapped[int] = mapped_column(Integer, default=0)
    firing_since: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_value: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    last_evaluated: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AlertEventRow(Base):
    """One alert fired or resolved: the history, kept after its rule is deleted."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_project_at", "project_id", "at"),)
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(256))
    severity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float(precision=53))
    threshold: Mapped[float] = mapped_column(Float(precision=53))
    comparison: Mapped[str] = mapped_column(String(2))
    labels: Mapped[str] = mapped_column(Text)
    at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
