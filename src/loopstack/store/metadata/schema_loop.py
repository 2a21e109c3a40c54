"""Tables of pipelines and of the closed loop (triggers, gates, rollouts), on the one ``Base``.

Kept beside ``schema.py`` (which would pass 900 lines with them). Times are epoch
milliseconds, JSON columns are ``Text`` holding canonical JSON.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loopstack.store.metadata.schema import Base, _BigId

__all__ = [
    "CheckpointRow",
    "GateResultRow",
    "LeaseRow",
    "LoopFiringRow",
    "LoopTriggerRow",
    "PipelineRunRow",
    "PipelineStepRow",
    "RolloutRow",
    "StepCacheRow",
]


class PipelineRunRow(Base):
    """One run of a pipeline: its graph and params as they were traced, and where it stands."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index("ix_pipeline_runs_project_created", "project_id", "created_at"),)
    run_uuid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    pipeline: Mapped[str] = mapped_column(String(256))
    #: ``module:qualname`` (or ``path.py:qualname``) that re-imports the pipeline to resume it
    entrypoint: Mapped[str] = mapped_column(String(1024))
    #: RUNNING, FINISHED, FAILED
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[str] = mapped_column(Text)
    graph: Mapped[str] = mapped_column(Text)
    executor: Mapped[str] = mapped_column(String(64))
    #: the tracked (parent) run of this pipeline run
    tracking_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: 1, then one more for each resume
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class PipelineStepRow(Base):
    """One step of a pipeline run: status, cache key, outputs and the resources it used."""

    __tablename__ = "pipeline_steps"
    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("pipeline_runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[str] = mapped_column(String(256), primary_key=True)
    #: PENDING, RUNNING, FINISHED, CACHED, FAILED, SKIPPED
    status: Mapped[str] = mapped_column(String(16))
    cache_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tracking_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: JSON list of artifact references ({name, kind, sha256, size})
    outputs: Mapped[str] = mapped_column(Text, default="[]")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the pipeline run whose outputs a CACHED step reused
    cached_from: Mapped[str | None] = mapped_column(String(32), nullable=True)
    started_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    wall_s: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    cpu_s: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class StepCacheRow(Base):
    """A finished step's outputs under its cache key (code, inputs, params, environment)."""

    __tablename__ = "step_cache"
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    outputs: Mapped[str] = mapped_column(Text)
    run_uuid: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)


class CheckpointRow(Base):
    """The latest saved training state under (project, key, name): a blob and its progress."""

    __tablename__ = "checkpoints"
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    progress: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[int] = mapped_column(BigInteger)


class LeaseRow(Base):
    """A named lease held until ``expires_at``: the loop's controller, a project's step slots."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    acquired_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class LoopTriggerRow(Base):
    """A persisted trigger of the closed loop: what it watches and the pipeline it starts."""

    __tablename__ = "loop_triggers"
    __table_args__ = (Index("ux_loop_triggers_project_name", "project_id", "name", unique=True),)
    trigger_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    #: cron, dataset, drift, performance, kpi, alert, manual
    kind: Mapped[str] = mapped_column(String(32))
    spec: Mapped[str] = mapped_column(Text)
    pipeline: Mapped[str] = mapped_column(String(1024))
    params: Mapped[str] = mapped_column(Text, default="{}")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: what the trigger has already seen (last dataset version, last cron tick, ...)
    state: Mapped[str] = mapped_column(Text, default="{}")
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class LoopFiringRow(Base):
    """A trigger that fired, why, and what it led to. ``(trigger_id, dedup_key)`` is unique,
    so two controllers that see the same event record (and act on) it once."""

    __tablename__ = "loop_firings"
    __table_args__ = (
        Index("ux_loop_firings_trigger_dedup", "trigger_id", "dedup_key", unique=True),
        Index("ix_loop_firings_project_fired", "project_id", "fired_at"),
    )
    firing_id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("loop_triggers.trigger_id"))
    dedup_key: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text)
    #: pending, running, done, failed, stopped (a gate said no)
    status: Mapped[str] = mapped_column(String(16))
    pipeline_run_uuid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(Text, default="{}")
    fired_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class GateResultRow(Base):
    """One gate's outcome for a model version, with its evidence (JSON)."""

    __tablename__ = "gate_results"
    __table_args__ = (Index("ix_gate_results_version", "project_id", "model_name", "version"),)
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(32))
    gate: Mapped[str] = mapped_column(String(128))
    passed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)
    evaluated_at: Mapped[int] = mapped_column(BigInteger)


class RolloutRow(Base):
    """A model version's way to production on an endpoint: plan, current step, breaches."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_project_endpoint", "project_id", "endpoint"),)
    rollout_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    endpoint: Mapped[str] = mapped_column(String(256))
    model_name: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(32))
    #: awaiting_approval, shadow, canary, paused, promoted, rolled_back, failed
    status: Mapped[str] = mapped_column(String(32))
    plan: Mapped[str] = mapped_column(Text)
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    step_started_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: JSON: guardrail -> breaches in a row, and the last observations
    watch: Mapped[str] = mapped_column(Text, default="{}")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
