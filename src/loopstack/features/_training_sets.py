"""Register a point-in-time training set as a dataset version, with feature lineage.

The lineage it records (what the breaking-change check reads):

- ``feature_view:<view>`` -> ``dataset_version:<name>/<version>``, relation ``features``;
- ``feature:<view>:<feature>`` -> ``dataset_version:<name>/<version>``, relation
  ``feature``: one edge per feature ref the training set contains.

When a run is active, the training set is also logged as the run's input, so a model
version logged from that run is known to use those features.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, select

from loopstack.store.metadata.schema import LineageEdge

if TYPE_CHECKING:
    from loopstack.features._store import FeatureStore

__all__ = ["register_training_set"]

EDGES = cast(Table, LineageEdge.__table__)


def register_training_set(
    store: FeatureStore,
    name: str,
    df: Any,
    *,
    refs: list[str],
    views: list[str],
    service: str | None = None,
) -> Any:
    """Store ``df`` as a version of dataset ``name`` and link it to its features."""
    from loopstack.data import DatasetStore

    datasets = DatasetStore(store.stores, actor=store.actor, project_id=store.project_id)
    dv = datasets.register(
        name,
        df,
        source_uri="feature_store:" + ",".join(refs),
        description="point-in-time training set of " + ", ".join(refs),
    )
    dst = f"{dv.name}/{dv.version}"
    edges = [("feature_view", v, "features") for v in views] + [
        ("feature", ref, "feature") for ref in refs
    ]
    if service is not None:
        edges.append(("feature_service", service, "features"))

    def run(conn: Connection) -> list[str]:
        now = int(time.time() * 1000)
        added = []
        for src_type, src_id, relation in edges:
            exists = conn.execute(
                select(EDGES.c.relation).where(
                    EDGES.c.src_type == src_type,
                    EDGES.c.src_id == src_id,
                    EDGES.c.dst_type == "dataset_version",
                    EDGES.c.dst_id == dst,
                )
            ).first()
            if exists is None:
                conn.execute(
                    EDGES.insert().values(
                        src_type=src_type,
                        src_id=src_id,
                        dst_type="dataset_version",
                        dst_id=dst,
                        relation=relation,
                        created_at=now,
                    )
                )
                added.append(f"{src_type}:{src_id}")
        return added

    store.db.write(
        run,
        actor=store.actor,
        action="lineage.add",
        object_type="dataset",
        object_id=dst,
        payload={"features": refs, "views": views},
        project_id=store.project_id,
    )
    df.attrs["dataset_version"] = f"{dv.name}/{dv.version}"
    from loopstack.tracking import active_run

    current = active_run()
    if current is not None:
        current.log_input(dv, context="training")
    return dv
