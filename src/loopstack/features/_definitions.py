"""Feature store definitions, named as Feast users know them.

>>> driver = Entity("driver", join_keys=["driver_id"])
>>> stats = FeatureView("driver_stats", entities=[driver], source="stats.parquet",
...                     schema=[Field("conv_rate", Float32), Field("trips", Int64)],
...                     ttl=timedelta(days=1))

Every definition has ``to_dict()`` / ``from_dict()`` and a stable ``digest`` over its
JSON form (sorted keys), so re-applying an identical definition is a no-op.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from loopstack.errors import Invalid, NotFound
from loopstack.features._sources import Source, as_source, source_from_dict
from loopstack.features._types import normalize_dtype

__all__ = [
    "Entity",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "OnDemandFeatureView",
    "RequestSource",
    "definition_from_dict",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.]{0,127}")


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise Invalid(
            f"a {what} name must be 1-128 letters, digits, '_', '-' or '.', starting "
            f"with a letter or '_'; got {name!r} instead",
            field="name",
        )
    return name


def _check_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise Invalid(f"tags must be a dict of str to str; got {tags!r}", field="tags")
    return {str(k): str(v) for k, v in tags.items()}


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class _Definition:
    name: str

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def digest(self) -> str:
        """sha256 of the definition's JSON form: equal definitions have equal digests."""
        return _digest(self.to_dict())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Field(_Definition):
    """One feature column and its type (``"float32"``, ``Float32``, ``numpy.float32``, ...)."""

    def __init__(self, name: str, dtype: Any) -> None:
        if not isinstance(name, str) or not name:
            raise Invalid(f"a field name must be a non-empty string; got {name!r}", field="name")
        self.name = name
        self.dtype = normalize_dtype(dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Field:
        return cls(data["name"], data["dtype"])

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.dtype!r})"


def _fields(schema: Any, owner: str) -> list[Field]:
    if schema is None:
        return []
    if not isinstance(schema, list | tuple):
        raise Invalid(
            f"the schema of {owner!r} must be a list of Field; got {schema!r}", field="schema"
        )
    out: list[Field] = []
    for f in schema:
        if isinstance(f, tuple) and len(f) == 2:
            f = Field(*f)
        if not isinstance(f, Field):
            raise Invalid(
                f"the schema of {owner!r} must hold Field objects; got {f!r}", field="schema"
            )
        out.append(f)
    names = [f.name for f in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise Invalid(
            f"the schema of {owner!r} names {', '.join(dup)} more than once", field="schema"
        )
    return out


class Entity(_Definition):
    """What features are about (a driver, a customer), identified by its join keys."""

    def __init__(
        self,
        name: str,
        join_keys: list[str] | None = None,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = _check_name(name, "entity")
        keys = list(join_keys) if join_keys else [name]
        if not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
            raise Invalid(
                f"the join keys of entity {name!r} must be distinct column names; "
                f"got {join_keys!r}",
                field="join_keys",
            )
        self.join_keys = keys
        self.description, self.owner, self.tags = str(description), str(owner), _check_tags(tags)

    @property
    def join_key(self) -> str:
        return self.join_keys[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "entity",
            "name": self.name,
            "join_keys": self.join_keys,
            "description": self.description,
            "owner": self.owner,
            "tags": self.tags,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entity:
        return cls(
            data["name"],
            data["join_keys"],
            data.get("description", ""),
            data.get("owner", ""),
            data.get("tags"),
        )


class RequestSource(_Definition):
    """Values that arrive with the request (training: columns of the entity DataFrame)."""

    def __init__(self, name: str, schema: list[Field]) -> None:
        self.name = _check_name(name, "request source")
        self.schema = _fields(schema, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "request_source",
            "name": self.name,
            "schema": [f.to_dict() for f in self.schema],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestSource:
        return cls(data["name"], [Field.from_dict(f) for f in data["schema"]])


def _ttl(ttl: Any, name: str) -> timedelta | None:
    if ttl is None:
        return None
    if isinstance(ttl, int | float) and not isinstance(ttl, bool):
        ttl = timedelta(seconds=ttl)
    if not isinstance(ttl, timedelta) or ttl < timedelta(0):
        raise Invalid(
            f"the ttl of feature view {name!r} must be a non-negative timedelta or "
            f"None; got {ttl!r}",
            field="ttl",
        )
    # Feast treats a zero TTL as "no TTL"
    return None if ttl == timedelta(0) else ttl


class FeatureView(_Definition):
    """Features of one or more entities, read from a source with event timestamps."""

    kind = "batch"

    def __init__(
        self,
        name: str,
        entities: list[Entity | str] | None = None,
        schema: list[Field] | None = None,
        source: Any = None,
        timestamp_field: str = "event_timestamp",
        ttl: timedelta | None = None,
        owner: str = "",
        description: str = "",
        tags: dict[str, str] | None = None,
        online: bool = True,
    ) -> None:
        self.name = _check_name(name, "feature view")
        self.entities: list[Entity | str] = []
        for e in entities or []:
            if not isinstance(e, Entity | str):
                raise Invalid(
                    f"the entities of feature view {name!r} must be Entity objects or "
                    f"entity names; got {e!r}",
                    field="entities",
                )
            self.entities.append(e)
        if source is None:
            raise Invalid(
                f"feature view {name!r} needs a source (a FileSource, SqlSource, "
                "DataFrameSource, Parquet path or DataFrame)",
                field="source",
            )
        src = as_source(source)
        ts = timestamp_field or src.timestamp_field or "event_timestamp"
        if src.timestamp_field is not None and timestamp_field == "event_timestamp":
            ts = src.timestamp_field  # the source's own column wins over the default
        self.timestamp_field = ts
        self.source: Source = src if src.timestamp_field == ts else _rebind(src, ts)
        self.schema = _fields(schema, name)
        self.ttl = _ttl(ttl, name)
        self.owner, self.description = str(owner), str(description)
        self.tags, self.online = _check_tags(tags), bool(online)
        clash = [f.name for f in self.schema if f.name in self.join_keys or f.name == ts]
        if clash:
            raise Invalid(
                f"feature view {name!r} declares {', '.join(clash)} as a feature, but "
                "it is a join key or the timestamp field",
                field="schema",
            )

    @property
    def entity_names(self) -> list[str]:
        return [e.name if isinstance(e, Entity) else e for e in self.entities]

    @property
    def join_keys(self) -> list[str]:
        """The join keys of the view's entities (an entity given by name joins on its name,
        until the store resolves it to the registered entity)."""
        keys: list[str] = []
        for e in self.entities:
            for k in e.join_keys if isinstance(e, Entity) else [e]:
                if k not in keys:
                    keys.append(k)
        return keys

    @property
    def features(self) -> list[Field]:
        return self.schema

    def __getitem__(self, names: list[str]) -> FeatureViewProjection:
        """``view[["a", "b"]]``: those features of this view, for a FeatureService."""
        return _project(self, names)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.schema]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "feature_view",
            "name": self.name,
            "entities": [e.to_dict() if isinstance(e, Entity) else e for e in self.entities],
            "join_keys": self.join_keys,
            "schema": [f.to_dict() for f in self.schema],
            "source": self.source.to_dict(),
            "timestamp_field": self.timestamp_field,
            "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
            "owner": self.owner,
            "description": self.description,
            "tags": self.tags,
            "online": self.online,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureView:
        ents: list[Entity | str] = [
            Entity.from_dict(e) if isinstance(e, dict) else e for e in data.get("entities", [])
        ]
        ttl = data.get("ttl_seconds")
        return cls(
            data["name"],
            ents,
            [Field.from_dict(f) for f in data.get("schema", [])],
            source_from_dict(data["source"]),
            data.get("timestamp_field") or "event_timestamp",
            None if ttl is None else timedelta(seconds=ttl),
            data.get("owner", ""),
            data.get("description", ""),
            data.get("tags"),
            data.get("online", True),
        )


class FeatureViewProjection:
    """``view[["a", "b"]]``: some features of a view, for a FeatureService."""

    def __init__(self, view: str, features: list[str]) -> None:
        self.view, self.features = view, features

    def __repr__(self) -> str:
        return f"FeatureViewProjection({self.view!r}, {self.features!r})"


def _project(view: Any, names: Any) -> FeatureViewProjection:
    wanted = [names] if isinstance(names, str) else names
    if not isinstance(wanted, list | tuple) or not all(isinstance(n, str) for n in wanted):
        raise Invalid(
            f"select features of {view.name!r} with a list of names; got {names!r}",
            field="features",
        )
    unknown = [n for n in wanted if n not in view.feature_names]
    if unknown:
        raise Invalid(
            f"feature view {view.name!r} has no feature {', '.join(map(repr, unknown))}; "
            f"its features: {', '.join(view.feature_names) or 'none'}",
            field="features",
        )
    return FeatureViewProjection(view.name, list(wanted))


def _rebind(src: Source, ts: str) -> Source:
    clone = object.__new__(type(src))
    clone.__dict__.update(src.__dict__)
    clone.timestamp_field = ts
    return clone


class OnDemandFeatureView(_Definition):
    """Features computed by a Python function from request values and other views' features.

    The same ``udf`` runs in training (``get_historical_features``) and in serving
    (``transform``): it gets a pandas DataFrame holding the request columns and the source
    views' features (by feature name) and returns a DataFrame with the ``schema`` columns.

    >>> def ratio(df): return pd.DataFrame({"ratio": df["trips"] / df["hours"]})
    >>> OnDemandFeatureView("ratios", sources=[stats, req], schema=[Field("ratio", Float64)],
    ...                     udf=ratio)
    """

    kind = "on_demand"

    def __init__(
        self,
        name: str,
        sources: list[FeatureView | RequestSource],
        schema: list[Field],
        udf: Callable[[Any], Any] | None,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
        udf_ref: dict[str, str] | None = None,
    ) -> None:
        self.name = _check_name(name, "on-demand feature view")
        self.sources: list[FeatureView | RequestSource] = []
        for s in sources or []:
            if not isinstance(s, FeatureView | RequestSource):
                raise Invalid(
                    f"the sources of on-demand feature view {name!r} must be "
                    f"FeatureView or RequestSource objects; got {s!r}",
                    field="sources",
                )
            self.sources.append(s)
        self.schema = _fields(schema, name)
        if udf is not None and not callable(udf):
            raise Invalid(
                f"the udf of {name!r} must be a function of a pandas DataFrame; got {udf!r}",
                field="udf",
            )
        self._udf = udf
        self._udf_ref = udf_ref or (_udf_ref(udf) if udf is not None else {})
        self._udf_why = ""  # why the stored udf cannot run here, once looked up
        self.description, self.owner, self.tags = str(description), str(owner), _check_tags(tags)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.schema]

    @property
    def udf(self) -> Callable[[Any], Any] | None:
        """The function, or None when this process cannot run the stored one.

        A definition read back from the registry names its udf by module and qualname;
        the module is imported only when the udf is first needed (a server that stores
        definitions never imports what a client named), only from the modules that
        ``LOOPSTACK_UDF_MODULES`` allows when it is set, and only if the function's code
        still has the digest recorded at apply (no training/serving skew).
        """
        if self._udf is None and not self._udf_why and self._udf_ref:
            self._udf, self._udf_why = _import_udf(self._udf_ref)
        return self._udf

    @property
    def source_views(self) -> list[FeatureView]:
        return [s for s in self.sources if isinstance(s, FeatureView)]

    @property
    def request_sources(self) -> list[RequestSource]:
        return [s for s in self.sources if isinstance(s, RequestSource)]

    def transform(self, df: Any) -> Any:
        """Run the udf on ``df`` (request columns + source features) and return its
        ``schema`` columns, cast to their declared types, one row per input row."""
        import pandas as pd

        udf = self.udf
        if udf is None:
            raise NotFound(
                f"the udf of on-demand feature view {self.name!r} "
                f"({self._udf_ref.get('module')}:{self._udf_ref.get('qualname')}) "
                f"cannot run in this process: {self._udf_why or 'it cannot be imported'}; "
                "apply the definition from code that defines it"
            )
        try:
            out = udf(df)
        except Exception as exc:
            raise Invalid(
                f"the udf of on-demand feature view {self.name!r} failed: "
                f"{type(exc).__name__}: {exc}",
                field="udf",
            ) from exc
        if not isinstance(out, pd.DataFrame):
            raise Invalid(
                f"the udf of {self.name!r} must return a pandas DataFrame; got "
                f"{type(out).__name__}",
                field="udf",
            )
        missing = [f.name for f in self.schema if f.name not in out.columns]
        if missing:
            raise Invalid(
                f"the udf of {self.name!r} did not return {', '.join(missing)}; it "
                f"returned {', '.join(map(str, out.columns))}",
                field="udf",
            )
        if len(out) != len(df):
            raise Invalid(
                f"the udf of {self.name!r} returned {len(out)} rows for {len(df)}", field="udf"
            )
        result = out[self.feature_names].reset_index(drop=True)
        return _cast_frame(result, {f.name: f.dtype for f in self.schema})

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "on_demand_feature_view",
            "name": self.name,
            "sources": [s.to_dict() for s in self.sources],
            "schema": [f.to_dict() for f in self.schema],
            "udf": self._udf_ref,
            "description": self.description,
            "owner": self.owner,
            "tags": self.tags,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnDemandFeatureView:
        sources: list[FeatureView | RequestSource] = []
        for s in data.get("sources", []):
            sources.append(
                RequestSource.from_dict(s)
                if s.get("type") == "request_source"
                else FeatureView.from_dict(s)
            )
        ref = dict(data.get("udf") or {})
        return cls(
            data["name"],
            sources,
            [Field.from_dict(f) for f in data["schema"]],
            None,  # imported on first use (see ``udf``)
            data.get("description", ""),
            data.get("owner", ""),
            data.get("tags"),
            udf_ref=ref,
        )


def _udf_ref(udf: Any) -> dict[str, str]:
    try:
        code = inspect.getsource(udf)
    except (OSError, TypeError):
        code = getattr(getattr(udf, "__code__", None), "co_code", b"").hex()
    return {
        "module": getattr(udf, "__module__", "") or "",
        "qualname": getattr(udf, "__qualname__", "") or "",
        "source_sha256": hashlib.sha256(code.encode()).hexdigest(),
    }


def _import_udf(ref: dict[str, str]) -> tuple[Callable[[Any], Any] | None, str]:
    """The function ``ref`` names and, when there is none, why."""
    # Only import by name: never execute code stored in the registry.
    module, qualname = ref.get("module") or "", ref.get("qualname") or ""
    if not module or not qualname or "<" in qualname:
        return None, "it is a lambda or a local function, which only its own process has"
    allowed = [m.strip() for m in os.environ.get("LOOPSTACK_UDF_MODULES", "").split(",")]
    allowed = [m for m in allowed if m]
    if allowed and not any(module == m or module.startswith(m + ".") for m in allowed):
        return None, f"module {module!r} is not in LOOPSTACK_UDF_MODULES ({', '.join(allowed)})"
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        return None, f"importing it failed ({type(exc).__name__}: {str(exc)[:120]})"
    if not callable(obj):
        return None, f"{module}:{qualname} is not a function"
    recorded = ref.get("source_sha256")
    if recorded and _udf_ref(obj)["source_sha256"] != recorded:
        return None, (
            f"the code of {module}:{qualname} changed since the view was applied "
            "(its digest differs); re-apply the view to serve the new code"
        )
    return obj, ""


def _cast_frame(df: Any, dtypes: dict[str, str]) -> Any:
    import pandas as pd

    for col, dtype in dtypes.items():
        try:
            if dtype in ("int32", "int64"):
                df[col] = (
                    df[col].astype("Int64" if dtype == "int64" else "Int32")
                    if df[col].isna().any()
                    else df[col].astype(dtype)
                )
            elif dtype in ("float32", "float64"):
                df[col] = df[col].astype(dtype)
            elif dtype == "timestamp":
                df[col] = pd.to_datetime(df[col], utc=True)
        except (TypeError, ValueError) as exc:
            raise Invalid(f"column {col!r} must be {dtype}: {exc}", field=col) from exc
    return df


def definition_from_dict(data: dict[str, Any]) -> Any:
    """An Entity, FeatureView or OnDemandFeatureView from its ``to_dict()`` form."""
    kind = data.get("type")
    cls = {
        "entity": Entity,
        "feature_view": FeatureView,
        "on_demand_feature_view": OnDemandFeatureView,
        "request_source": RequestSource,
    }.get(str(kind))
    if kind == "feature_service":
        from loopstack.features._service import FeatureService

        return FeatureService.from_dict(data)
    if cls is None:
        raise Invalid(f"unknown definition type {kind!r}", field="type")
    return cls.from_dict(data)  # type: ignore[attr-defined]
