"""``ls.checkpoint``: training state saved in the artifact store, so a killed job resumes.

Inside a running step a checkpoint is keyed by the step's cache key: the same step
with the same inputs, params and code, run again after a kill, finds what it saved.
Outside a step, pass ``key=``. The state is pickled (trusted stores only).
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

from loopstack.errors import Invalid
from loopstack.pipelines._digest import canonical_json
from loopstack.pipelines._store import SqlPipelineStore
from loopstack.pipelines._task import current_step

__all__ = ["Checkpoint", "checkpoint"]


class Checkpoint:
    """The latest saved state under (project, key, name).

    >>> with ls.checkpoint("state") as ckpt:
    ...     state = ckpt.load(default={"epoch": 0})
    ...     ckpt.save(state, progress={"epoch": 3})
    """

    def __init__(self, name: str, *, key: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise Invalid(f"a checkpoint needs a name; got {name!r} instead")
        context = current_step()
        if key is None and context is None:
            raise Invalid(
                f"checkpoint {name!r} is outside a running step, so it needs an explicit key=; "
                f"got none"
            )
        from loopstack.auth import project_in_use
        from loopstack.config import settings
        from loopstack.store import open_stores

        config = settings()
        if context is not None:
            config = replace(config, db_url=context.db_url, artifacts_url=context.artifacts_url)
        stores = open_stores(config)
        project = context.project_id if context is not None else project_in_use(stores.db, config)
        self.name = name
        self.key = key if key is not None else f"step:{context.cache_key}"  # type: ignore[union-attr]
        self._store = SqlPipelineStore(stores, project, actor=config.actor)
        self._blobs = stores.artifacts.blobs
        self._progress: dict[str, Any] | None = None

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def progress(self) -> dict[str, Any]:
        """The progress saved with the latest state (``{}`` before the first save)."""
        if self._progress is None:
            found = self._store.get_checkpoint(self.key, self.name)
            self._progress = found[1] if found else {}
        return dict(self._progress)

    def load(self, default: Any = None) -> Any:
        """The latest saved state, or ``default`` if nothing was saved yet."""
        found = self._store.get_checkpoint(self.key, self.name)
        if found is None:
            return default
        self._progress = found[1]
        return pickle.loads(self._blobs.read_bytes(found[0]))  # noqa: S301 - trusted store

    def save(self, state: Any, *, progress: dict[str, Any] | None = None) -> None:
        """Save ``state`` (pickled) with ``progress`` (JSON), replacing the previous one."""
        progress = dict(progress or {})
        canonical_json(progress, what="a checkpoint's progress")
        try:
            data = pickle.dumps(state, protocol=5)
        except Exception as exc:
            raise Invalid(f"checkpoint state must pickle; {type(state).__name__}: {exc}") from exc
        sha256, size = self._blobs.put_bytes(data)
        self._store.put_checkpoint(self.key, self.name, sha256, size, progress)
        self._progress = progress


def checkpoint(name: str, *, key: str | None = None) -> Checkpoint:
    """The checkpoint ``name`` of the running step (or under ``key``)."""
    return Checkpoint(name, key=key)
