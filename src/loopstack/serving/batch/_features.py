"""Feature enrichment of a batch job: each chunk's rows get feature values before scoring.

Offline (``as_of`` or an input ``timestamp_column``): the training-set join itself,
``features._offline.plan_historical`` resolved once in the job's process and
``join_features`` run on each chunk's entity columns in the worker, so a batch sees
exactly the values a training set built at those times would (the latest row at or
before each row's time, within the view's TTL; nulls where none is visible). Online
(``online=True``): ``FeatureStore.get_online_features`` per chunk, one batched read per
view, the newest values as the online endpoints read them.

The features are named as in a training set (``feature``, or ``view__feature`` with
``full_feature_names``); a model input column that the input lacks must be one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from loopstack.errors import Invalid

__all__ = ["Enrichment", "enrich_table", "plan_enrichment"]

_AS_OF = "__ls_as_of"
_stores: dict[Any, Any] = {}  # (project, online url) -> FeatureStore, one per process


@dataclass(frozen=True)
class Enrichment:
    """What every chunk needs to be enriched: the refs, how, and the offline plan."""

    refs: tuple[str, ...]
    service: str | None
    online: bool
    as_of: datetime | None
    timestamp_column: str | None
    full_feature_names: bool
    entity_columns: tuple[str, ...]  # read from the input (the as-of column is added)
    outputs: tuple[str, ...]  # the feature columns added, in request order
    project: int | str | None
    online_url: str | None
    plan: Any = None  # features._offline.HistoricalPlan (offline only)

    def manifest(self) -> dict[str, Any]:
        """What a resumed job must share with the one it resumes."""
        return {
            "refs": list(self.refs),
            "online": self.online,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "timestamp_column": self.timestamp_column,
            "full_feature_names": self.full_feature_names,
        }


def _as_of(value: Any) -> datetime:
    from loopstack.features._sources import to_utc

    return to_utc(value, "as_of").replace(tzinfo=UTC)


def plan_enrichment(
    features: Any,
    input_columns: list[str],
    *,
    as_of: Any = None,
    timestamp_column: str | None = None,
    online: bool = False,
    full_feature_names: bool = False,
    store: Any = None,
) -> Enrichment:
    """Resolve ``features`` (refs, a FeatureService or a service's name) and check them
    against the input's columns before any work (``Invalid``/``NotFound`` naming what).
    ``store``: the FeatureStore to resolve them in (one that applied views over
    in-memory sources holds those sources); by default the configuration's."""
    from loopstack.features import FeatureService, FeatureStore
    from loopstack.features._service import feature_refs

    modes = sum(x is not None and x is not False for x in (as_of, timestamp_column, online))
    if modes != 1:
        raise Invalid(
            "feature enrichment needs exactly one of as_of=<time> (the offline store at "
            "that time), timestamp_column=<input column> (the offline store at each row's "
            "time) or online=True (the online store); got "
            f"as_of={as_of!r}, timestamp_column={timestamp_column!r}, online={online!r}",
            field="features",
        )
    store = store if store is not None else FeatureStore()
    if isinstance(features, str):
        features = store.get_feature_service(features)  # NotFound lists the services
    refs, service = feature_refs(features)
    if isinstance(features, FeatureService):
        service = features
    when = None if as_of is None else _as_of(as_of)
    project = store.project_id if store.server is None else store.project
    if online:
        from loopstack.features._online_read import _plan

        plan = _plan(store, refs, full_feature_names)  # NotFound for an unknown ref
        keys = list(plan.join_keys)
        for od in plan.odfvs:
            keys.extend(od.request_columns)
        missing = [k for k in keys if k not in input_columns]
        if missing:
            raise Invalid(
                f"the input lacks column(s) {', '.join(map(repr, missing))} that the "
                f"online features {', '.join(refs)} are keyed by (or read as request "
                f"values); it has {sorted(input_columns)}",
                field="input",
            )
        outputs = list(plan.columns)
        clash = [c for c in outputs if c in input_columns]
        if clash:
            raise Invalid(
                f"the features would replace the input's column(s) "
                f"{', '.join(map(repr, clash))}; pass full_feature_names=True",
                field="features",
            )
        return Enrichment(
            tuple(refs),
            service.name if service else None,
            True,
            None,
            None,
            full_feature_names,
            tuple(dict.fromkeys(keys)),
            tuple(outputs),
            project,
            store.online_url,
        )
    from loopstack.features._offline import plan_historical

    ts = timestamp_column if timestamp_column is not None else _AS_OF
    columns = input_columns if timestamp_column is not None else [*input_columns, _AS_OF]
    historical = plan_historical(
        store, columns, refs, full_feature_names=full_feature_names, timestamp_column=ts
    )
    entity = [c for c in historical.entity_columns if c != _AS_OF]
    return _shippable(
        Enrichment(
            tuple(refs),
            service.name if service else None,
            False,
            when,
            timestamp_column,
            full_feature_names,
            tuple(entity),
            tuple(historical.output_names),
            project,
            store.online_url,
            historical,
        )
    )


def _shippable(enrichment: Enrichment) -> Enrichment:
    """``enrichment``, once it is known to reach the worker processes (pickled): an
    on-demand view's function defined in ``__main__`` or as a lambda does not."""
    import pickle

    try:
        pickle.dumps(enrichment)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise Invalid(
            f"the features {', '.join(enrichment.refs)} cannot be sent to the worker "
            f"processes ({exc}); define on-demand views' functions in an importable module",
            field="features",
        ) from exc
    return enrichment


def enrich_table(enrichment: Enrichment, table: pa.Table) -> pa.Table:
    """``table`` (a chunk, with the entity columns) with the feature columns appended."""
    entities = table.select(list(enrichment.entity_columns)).to_pandas()
    if enrichment.online:
        store = _store(enrichment)
        response = store.get_online_features(
            entities, list(enrichment.refs), full_feature_names=enrichment.full_feature_names
        )
        for name in enrichment.outputs:
            table = table.append_column(name, pa.array(response.values[name]))
        return table
    from loopstack.features._offline import join_features

    if enrichment.as_of is not None:
        entities[_AS_OF] = enrichment.as_of
    joined = join_features(enrichment.plan, entities)
    for name in enrichment.outputs:
        table = table.append_column(name, pa.Array.from_pandas(joined[name]))
    return table


def _store(enrichment: Enrichment) -> Any:
    key = (enrichment.project, enrichment.online_url)
    found = _stores.get(key)
    if found is None:
        from loopstack.features import FeatureStore

        found = _stores[key] = FeatureStore(
            project=enrichment.project, online_url=enrichment.online_url
        )
    return found
