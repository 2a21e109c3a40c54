"""``PipelineRun``: a pipeline run as recorded, and the values its steps made."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid
from loopstack.pipelines._artifacts import ArtifactRef, load_artifact
from loopstack.pipelines._store import RunRecord, StepRecord

if TYPE_CHECKING:
    from loopstack.store import Stores

__all__ = ["PipelineRun"]


class PipelineRun:
    """A pipeline run as recorded: status, steps, and their outputs."""

    def __init__(self, record: RunRecord, stores: Stores | None, messages: list[str] | None = None):
        self.record = record
        self._stores = stores
        #: what the run said as it went ("train: cached, outputs of run ...")
        self.messages = list(messages or [])

    def __repr__(self) -> str:
        return f"<PipelineRun {self.run_uuid} {self.pipeline!r} {self.status}>"

    run_uuid = property(lambda self: self.record.run_uuid, doc="The run's id.")
    pipeline = property(lambda self: self.record.pipeline, doc="The pipeline's name.")
    status = property(lambda self: self.record.status, doc="RUNNING, FINISHED or FAILED.")
    error = property(lambda self: self.record.error, doc="Why it failed, if it did.")
    attempt = property(lambda self: self.record.attempt, doc="1, then +1 per resume.")
    params = property(lambda self: self.record.params, doc="The params it ran with.")
    graph = property(lambda self: self.record.graph, doc="The graph it ran (JSON).")
    entrypoint = property(lambda self: self.record.entrypoint, doc="What resume imports.")

    @property
    def steps(self) -> dict[str, StepRecord]:
        """Each step's record, by node name."""
        return self.record.steps

    @property
    def tracking_run_id(self) -> str | None:
        """The pipeline's tracked (parent) run."""
        return self.record.tracking_run_id

    def output(self, step: str, name: str | None = None) -> Any:
        """The value a step made (a tuple for several outputs; ``name`` picks one)."""
        record = self.steps.get(step)
        if record is None:
            raise Invalid(f"run {self.run_uuid} has the steps {sorted(self.steps)}; got {step!r}")
        refs = [ArtifactRef.from_dict(r) for r in record.outputs]
        if not refs:
            raise Invalid(f"step {step!r} has no outputs (its status is {record.status})")
        if name is not None:
            match = [r for r in refs if r.name == f"{step}.{name}"]
            if not match:
                raise Invalid(f"step {step!r} makes {[r.name for r in refs]}; got {name!r}")
            refs = match
        if self._stores is None:
            raise Invalid(
                f"run {self.run_uuid} was read through a server, which does not hand out "
                "step outputs; load them where the artifact store is (LOOPSTACK_ARTIFACTS_URL)"
            )
        values = [load_artifact(self._stores.artifacts.blobs, r) for r in refs]
        return values[0] if len(refs) == 1 and (name or len(record.outputs) == 1) else tuple(values)
