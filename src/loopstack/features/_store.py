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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack._progress import phases
from loopstack.errors import Invalid, NotFound
from loopstack.features._definitions import Entity, FeatureView, OnDemandFeatureView
from loopstack.features._registry import (
    AppliedDefinition,
    DeletedDefinition,
    FeatureRegistry,
    ViewVersion,
)
from loopstack.features._registry_base import RegistryBackend
from loopstack.features._service import FeatureService, feature_refs

if TYPE_CHECKING:
    from loopstack.store import Stores
    from loopstack.store.metadata import Database

__all__ = ["FeatureStore"]


class FeatureStore:
    """Feature definitions, point-in-time training sets, and the online store of a project.

    ``project``: a project name or id (default: ``settings().project``, else the default
    project). ``online_url``: the online store (default ``$LOOPSTACK_ONLINE_URL`` or
    ``sqlite:///$LOOPSTACK_HOME/online.db``).

    With an http(s) tracking URI the store reaches the server, never a local file:

    - definitions (``apply``, ``get_*``, ``list_*``, versions, feature services) are the
      server's, as in Feast's remote registry. A DataFrameSource's rows and an on-demand
      view's udf do not cross the wire: they are registered (by digest and reference),
      and the process that applied them computes with them (``get_historical_features``);
    - ``get_online_features`` asks the server's feature server
      (``POST /api/v1/features/online``), which reads the server's online store;
    - ``get_historical_features`` runs here, over sources this process can read;
      ``register_as`` is refused (it writes lineage in the metadata store);
    - ``freshness`` is the server's (``GET /api/v1/features/freshness``);
    - ``materialize``, ``materialize_incremental``, ``push`` and
      ``check_skew`` need the metadata store (records, project-keyed online rows) and are
      refused with ``Invalid``: run them where ``LOOPSTACK_DB_URL`` names the server's
      database and the online store is shared.
    """

    def __init__(
        self,
        *,
        project: str | int | None = None,
        online_url: str | None = None,
        actor: str | None = None,
    ) -> None:
        from loopstack.config import settings
        from loopstack.store.remote import HttpClient, local_config, server_url

        config = settings()
        self.settings = config
        self.actor = actor or config.actor
        self.project = project
        self.server = server_url(config)
        # the objects applied by this process: they hold what JSON cannot (DataFrames, udfs)
        self._live: dict[str, FeatureView | OnDemandFeatureView] = {}
        self._online: Any = None
        self._online_plans: dict[Any, Any] = {}
        self._stores: Stores | None = None
        self.registry: RegistryBackend
        if self.server is not None:
            from loopstack.features._rest_registry import RestFeatureRegistry

            if project is not None and not isinstance(project, str):
                raise Invalid(
                    f"through a server, name the project; got the id {project!r}",
                    field="project",
                )
            name = project if project is not None else config.project
            self.client = HttpClient.shared(self.server, token=config.token, project=name)
            self.project_id = -1  # the server places each request in its project
            self.online_url = online_url or os.environ.get("LOOPSTACK_ONLINE_URL") or ""
            self.registry = RestFeatureRegistry(self.client)
            return
        from loopstack.auth import project_in_use
        from loopstack.store import open_stores

        config = local_config(config)
        stores = open_stores(config)
        project_id = project_in_use(stores.db, config, project=project)
        self._init_local(stores, project_id, online_url, config.home)

    def _init_local(
        self, stores: Stores, project_id: int, online_url: str | None, home: Path
    ) -> None:
        self._stores = stores
        self.project_id = project_id
        self.online_url = (
            online_url
            or os.environ.get("LOOPSTACK_ONLINE_URL")
            or f"sqlite:///{home / 'online.db'}"
        )
        self.registry = FeatureRegistry(stores.db, project_id=project_id, actor=self.actor)

    @classmethod
    def over(
        cls,
        stores: Stores,
        *,
        project_id: int,
        actor: str,
        home: Path,
        online_url: str | None = None,
    ) -> FeatureStore:
        """A store over given metadata stores (what the server uses, whatever its env says)."""
        self = cls.__new__(cls)
        from loopstack.config import settings

        self.settings, self.actor, self.project, self.server = settings(), actor, project_id, None
        self._live, self._online, self._online_plans = {}, None, {}
        self._init_local(stores, project_id, online_url, home)
        return self

    @property
    def stores(self) -> Stores:
        """The metadata and artifact stores (``Invalid`` through a server)."""
        if self._stores is None:
            raise self._remote_refusal("this operation")
        return self._stores

    @property
    def db(self) -> Database:
        """The metadata store (``Invalid`` through a server)."""
        return self.stores.db

    def _remote_refusal(self, what: str) -> Invalid:
        return Invalid(
            f"{what} needs the metadata store, and this FeatureStore reaches the server at "
            f"{self.server} (LOOPSTACK_TRACKING_URI); run it where LOOPSTACK_DB_URL names "
            "the server's database (e.g. `loopstack features materialize` on the server's "
            "host), so nothing is written to the wrong place",
            field="tracking_uri",
        )

    def _local_only(self, what: str) -> None:
        if self.server is not None:
            raise self._remote_refusal(what)

    # -- definitions ------------------------------------------------------------------------
    def apply(
        self, objs: Any, *, force: bool = False, check_source: bool = True
    ) -> list[AppliedDefinition]:
        """Register entities, feature views, on-demand views and feature services (new
        versions when changed).

        Each feature view is first checked against its source, as Feast's ``apply`` infers
        and checks the schema: the source is readable (``NotFound`` naming the path), and
        has the join keys, the timestamp field and every declared feature with a
        compatible type (``Conflict`` naming the view, the column, what was declared and
        what was found). ``check_source=False`` skips that, for definitions applied before
        their data exists (retrieval checks the same again). Identical duplicates in
        ``objs`` (one Entity defined in two files) count once; differing ones are refused.

        A breaking change (a feature's type, or removing a feature a registered model uses)
        raises ``Conflict`` unless ``force=True``. Removing a feature no model uses is
        applied with a ``UserWarning`` (also in the result's ``warnings``).
        """
        import warnings

        items = list(objs) if isinstance(objs, list | tuple | set) else [objs]
        if check_source:
            self.check_sources(items)
        results = self.registry.apply(items, force=force)
        for o in items:
            if isinstance(o, FeatureView | OnDemandFeatureView):
                self._live[o.name] = o
        for r in results:
            for message in r.warnings:
                warnings.warn(message, UserWarning, stacklevel=2)
        return results

    def check_sources(self, objs: Any) -> None:
        """Check each feature view in ``objs`` against its source, as ``apply`` does."""
        from loopstack.features._offline import check_view_source
        from loopstack.features._sources import duckdb_connect

        items = list(objs) if isinstance(objs, list | tuple | set) else [objs]
        batch = self.registry.prepare(items)  # join keys resolved from the entities
        con = duckdb_connect()
        try:
            for view in batch.views:
                check_view_source(view, con, with_order=False)
        finally:
            con.close()

    def delete(self, name: str, *, force: bool = False) -> DeletedDefinition:
        """Delete a feature view, on-demand view or feature service (every version), and
        a view's online rows; audited.

        Refused with ``Conflict`` naming them while a registered model version's training
        set used the view, or a feature service or on-demand view names it, unless
        ``force=True`` (then the audit event records what was forced).
        """
        deleted = self.registry.delete(name, force=force)
        self._live.pop(name, None)
        if self.server is None and deleted.kind != "feature_service":
            from loopstack.features import _materialize

            online = _materialize.online_store(self)
            online.delete_view(_materialize.online_view_key(self, name))
            self._online_plans = {}
        return deleted

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

    def get_feature_service(self, name: str) -> FeatureService:
        """The newest version of a feature service."""
        return self.registry.service(name)

    def list_feature_services(self) -> list[FeatureService]:
        return self.registry.services()

    # -- offline ----------------------------------------------------------------------------
    def get_historical_features(
        self,
        entity_df: Any,
        features: list[str] | FeatureService,
        *,
        full_feature_names: bool = False,
        register_as: str | None = None,
        timestamp_column: str = "event_timestamp",
    ) -> Any:
        """A point-in-time correct training set: one row per entity row, in order.

        ``features``: ``["view:feature", ...]`` (also ``"view:*"``) or a FeatureService. With
        ``register_as`` the result is registered as a dataset version with lineage to its
        feature views (and service). Read through a service inside an active run, the run
        gets the tag ``loopstack.feature_service`` (so its model versions name it).
        """
        if register_as is not None:
            self._local_only("get_historical_features(register_as=...)")
        refs, service = feature_refs(features)
        if service is not None:
            _tag_active_run(service)
        views = sorted({r.split(":", 1)[0] for r in refs})
        title = f"building a training set from {len(views)} feature view(s)"
        with phases(title, ["joining", "registering"]) as step:
            step("joining")  # the retrieval names the registering step itself
            return self._historical(
                entity_df, refs, full_feature_names, register_as, timestamp_column, service
            )

    def _historical(
        self,
        entity_df: Any,
        refs: list[str],
        full_feature_names: bool,
        register_as: str | None,
        timestamp_column: str,
        service: FeatureService | None,
    ) -> Any:
        from loopstack.features._offline import get_historical_features

        return get_historical_features(
            self,
            entity_df,
            refs,
            full_feature_names=full_feature_names,
            register_as=register_as,
            timestamp_column=timestamp_column,
            service=service.name if service is not None else None,
        )

    # -- online: thin delegates to the online modules ---------------------------------------
    def materialize(
        self,
        start: datetime,
        end: datetime,
        views: list[str] | None = None,
        *,
        raise_on_error: bool = True,
    ) -> Any:
        """Write each view's newest rows in ``(start, end]`` to the online store.

        Views are materialized one by one and reported per view: one that fails (an
        unreadable source) is recorded with its ``error`` and the others are still
        written; then a ``LoopstackError`` names every failed view (its ``result`` holds
        the per-view report), unless ``raise_on_error=False``.
        """
        self._local_only("materialize")
        from loopstack.features import _materialize

        return _materialize.materialize(self, start, end, views, raise_on_error=raise_on_error)

    def materialize_incremental(
        self,
        end: datetime | None = None,
        views: list[str] | None = None,
        *,
        raise_on_error: bool = True,
    ) -> Any:
        """Materialize each view from where its last run ended up to ``end`` (now); failures
        as ``materialize`` reports them."""
        self._local_only("materialize_incremental")
        from loopstack.features import _materialize

        return _materialize.materialize_incremental(self, end, views, raise_on_error=raise_on_error)

    def push(self, view: str, df: Any) -> Any:
        self._local_only("push")
        from loopstack.features import _materialize

        return _materialize.push(self, view, df)

    def get_online_features(
        self,
        entity_rows: Any,
        features: list[str] | FeatureService,
        *,
        full_feature_names: bool = False,
    ) -> Any:
        """The newest online values of ``features`` (refs or a FeatureService) per entity row;
        through a server, its feature server answers."""
        refs, _ = feature_refs(features)
        if self.server is not None:
            from loopstack.features._online_remote import get_online_features_remote

            return get_online_features_remote(self.client, entity_rows, refs, full_feature_names)
        from loopstack.features import _online_read

        return _online_read.get_online_features(self, entity_rows, refs, full_feature_names)

    def check_skew(self, view: str, sample: Any) -> Any:
        self._local_only("check_skew")
        from loopstack.features import _skew

        return _skew.check_skew(self, view, sample)

    def freshness(self, view: str | None = None) -> Any:
        """How fresh the online store is per batch feature view (or only ``view``): rows,
        newest event, lag, null rates, and ``stale`` when the lag is past the view's TTL;
        through a server, its online store's (``GET /api/v1/features/freshness``)."""
        from loopstack.features import _freshness

        if self.server is not None:
            answer = self.client.call("GET", "/features/freshness", params={"view": view})
            return [_freshness.ViewFreshness(**f) for f in answer["views"]]
        return _freshness.freshness(self, view=view)

    def __repr__(self) -> str:
        if self.server is not None:
            return f"FeatureStore(server={self.server!r}, project={self.project!r})"
        return f"FeatureStore(project_id={self.project_id}, online_url={self.online_url!r})"


def _tag_active_run(service: FeatureService) -> None:
    from loopstack.features._service import SERVICE_TAG
    from loopstack.tracking import active_run

    run = active_run()
    if run is not None:
        run.set_tag(SERVICE_TAG, service.name)
