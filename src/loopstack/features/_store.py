"""``FeatureStore``: the one object users hold, as in Feast.

>>> store = ls.FeatureStore()
>>> store.apply([driver, driver_stats])
>>> train = store.get_historical_features(labels, ["driver_stats:conv_rate"])

Definitions live in the metadata store; the online side (materialize, push, online
reads, skew and freshness checks) lives in its own modules and is reached through the
thin methods at the bottom.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from loopstack.errors import NotFound
from loopstack.features._definitions import Entity, FeatureView, OnDemandFeatureView
from loopstack.features._registry import AppliedDefinition, FeatureRegistry, ViewVersion

__all__ = ["FeatureStore"]


class FeatureStore:
    """Feature definitions, point-in-time training sets, and the online store of a project.

    ``project``: a project name or id (default: the one ``ls.set_project`` or
    ``LOOPSTACK_PROJECT`` chose, else the default project).
    ``online_url``: the online store (default ``$LOOPSTACK_ONLINE_URL`` or
    ``sqlite:///$LOOPSTACK_HOME/online.db``).
    """

    def __init__(
        self,
        *,
        project: str | int | None = None,
        online_url: str | None = None,
        actor: str | None = None,
    ) -> None:
        from loopstack.config import settings
        from loopstack.store import open_stores

        config = settings()
        if (
            config.tracking_uri
            and "://" in config.tracking_uri
            and not config.tracking_uri.startswith(("http://", "https://"))
        ):
            from dataclasses import replace

            config = replace(config, db_url=config.tracking_uri)
        self.settings = config
        self.stores = open_stores(config)
        self.db = self.stores.db
        self.actor = actor or config.actor
        self.project_id = self._project_id(project)
        self.project = project
        self.online_url = (
            online_url
            or os.environ.get("LOOPSTACK_ONLINE_URL")
            or f"sqlite:///{config.home / 'online.db'}"
        )
        self.registry = FeatureRegistry(self.db, project_id=self.project_id, actor=self.actor)
        # the objects applied by this process: they hold what JSON cannot (DataFrames, udfs)
        self._live: dict[str, FeatureView | OnDemandFeatureView] = {}
        self._online: Any = None

    def _project_id(self, project: str | int | None) -> int:
        from loopstack.auth import project_in_use

        # None: the project chosen by ls.set_project / LOOPSTACK_PROJECT, else 'default'
        return project_in_use(self.db, self.settings, project=project)

    # -- definitions ------------------------------------------------------------------------
    def apply(self, objs: Any, *, force: bool = False) -> list[AppliedDefinition]:
        """Register entities, feature views and on-demand views (new versions when changed).

        A breaking change (a feature's type, or removing a feature a registered model uses)
        raises ``Conflict`` unless ``force=True``.
        """
        items = list(objs) if isinstance(objs, list | tuple | set) else [objs]
        results = self.registry.apply(items, force=force)
        for o in items:
            if isinstance(o, FeatureView | OnDemandFeatureView):
                self._live[o.name] = o
        return results

    def get_entity(self, name: str) -> Entity:
        return self.registry.entity(name)

    def list_entities(self) -> list[Entity]:
        return self.registry.entities()

    def get_feature_view(
        self, name: str, version: int | None = None
    ) -> FeatureView | OnDemandFeatureView:
        """The current (or the given) version of a feature view or on-demand view."""
        stored = self.registry.view_version(name, version)
        live = self._live.get(name)
        if live is not None and live.digest == stored.digest:
            return live
        return self.registry.definition(name, stored.version)

    def get_on_demand_feature_view(self, name: str) -> OnDemandFeatureView:
        view = self.get_feature_view(name)
        if not isinstance(view, OnDemandFeatureView):
            raise NotFound(f"{name!r} is a feature view, not an on-demand feature view")
        return view

    def feature_view_version(self, name: str, version: int | None = None) -> ViewVersion:
        """The stored record (version number, digest, owner, ...) of a feature view."""
        return self.registry.view_version(name, version)

    def list_feature_views(self) -> list[FeatureView | OnDemandFeatureView]:
        return [self.get_feature_view(v.name) for v in self.registry.latest_versions()]

    # -- offline ----------------------------------------------------------------------------
    def get_historical_features(
        self,
        entity_df: Any,
        features: list[str],
        *,
        full_feature_names: bool = False,
        register_as: str | None = None,
        timestamp_column: str = "event_timestamp",
    ) -> Any:
        """A point-in-time correct training set: one row per entity row, in order.

        ``features``: ``["view:feature", ...]`` (also ``"view:*"``). With ``register_as`` the
        result is registered as a dataset version with lineage to its feature views.
        """
        from loopstack.features._offline import get_historical_features

        return get_historical_features(
            self,
            entity_df,
            features,
            full_feature_names=full_feature_names,
            register_as=register_as,
            timestamp_column=timestamp_column,
        )

    # -- online: thin delegates to the online modules ---------------------------------------
    def materialize(self, start: datetime, end: datetime, views: list[str] | None = None) -> Any:
        from loopstack.features import _materialize

        return _materialize.materialize(self, start, end, views)

    def materialize_incremental(
        self, end: datetime | None = None, views: list[str] | None = None
    ) -> Any:
        from loopstack.features import _materialize

        return _materialize.materialize_incremental(self, end, views)

    def push(self, view: str, df: Any) -> Any:
        from loopstack.features import _materialize

        return _materialize.push(self, view, df)

    def get_online_features(
        self, entity_rows: Any, features: list[str], *, full_feature_names: bool = False
    ) -> Any:
        from loopstack.features import _online_read

        return _online_read.get_online_features(self, entity_rows, features, full_feature_names)

    def check_skew(self, view: str, sample: Any) -> Any:
        from loopstack.features import _skew

        return _skew.check_skew(self, view, sample)

    def freshness(self) -> Any:
        from loopstack.features import _freshness

        return _freshness.freshness(self)

    def __repr__(self) -> str:
        return f"FeatureStore(project_id={self.project_id}, online_url={self.online_url!r})"
