"""Register a point-in-time training set as a dataset version, with feature lineage.

The lineage it records (what the breaking-change check reads):

- ``feature_view:<view>`` -> ``dataset_version:<name>/<version>``, relation ``features``;
- ``feature:<view>:<feature>`` -> ``dataset_version:<name>/<version>``, relation
  ``feature``: one edge per feature ref the training set contains.

When a run is active, the training set is also logged as the run's input, so a model
version logged from that run is known to use those features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from loopstack.store.metadata._lineage_edges import add_edges

if TYPE_CHECKING:
    from loopstack.features._store import FeatureStore

__all__ = ["register_training_set"]


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
        added = add_edges(conn, [(t, i, "dataset_version", dst, rel) for t, i, rel in edges])
        return [f"{e[0]}:{e[1]}" for e in added]

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
