"""Online reads: feature values for many entities, with event times and staleness.

The hot path is plain Python over a cached read plan: one online-store call per view
(one SQL statement or one Redis round trip for any number of entities), one decode per
row (``decode_row`` of a binary row, one ``msgpack.unpackb`` for format 2, mapped to the
requested features by a getter cached per stored layout; ``json.loads`` for rows written
as JSON), columns built by one transpose, no pandas unless an on-demand view runs or
``to_df()`` is called.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from loopstack.errors import Invalid, NotFound
from loopstack.features._materialize import online_store, online_view_key
from loopstack.features.online import decode_json, decode_row, encode_key, layout_names

__all__ = ["OnlineResponse", "get_online_features"]

_PLAN_TTL_S = 5.0  # how long a read plan trusts the registry before looking again
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_Getter = Callable[[list[Any]], Sequence[Any]]


def _ts_decoder(us: Any) -> Any:
    return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC)


def _bytes_decoder(text: Any) -> Any:
    return None if text is None else base64.b64decode(text)


_DECODERS: dict[str, Callable[[Any], Any]] = {"timestamp": _ts_decoder, "bytes": _bytes_decoder}


@dataclass
class _ViewRead:
    name: str
    online_key: str
    join_keys: tuple[str, ...]
    ttl_us: int | None
    #: (name in the stored row, output column, decoder or None)
    features: list[tuple[str, str, Callable[[Any], Any] | None]]
    #: stored layout -> the requested values (a tuple, in ``features`` order) of a row
    getters: dict[str, _Getter] = field(default_factory=dict)

    def getter(self, layout: str) -> _Getter:
        """Picks the requested features out of a binary row ``[format, layout, *values]``."""
        got = self.getters.get(layout)
        if got is not None:
            return got
        names = [f[0] for f in self.features]
        where = {n: i + 2 for i, n in enumerate(layout_names(layout))}
        idx = [where.get(n) for n in names]
        if idx == list(range(2, 2 + len(idx))) and len(where) == len(idx):
            got = itemgetter(slice(2, None))  # the whole row, in order (the common case)
        elif None not in idx and len(idx) > 1:
            got = itemgetter(*idx)
        else:  # one feature, or features the stored row does not have (None)

            def got(row: list[Any], idx: list[int | None] = idx) -> tuple[Any, ...]:
                return tuple(None if j is None else row[j] for j in idx)

        if len(self.getters) > 64:
            self.getters.clear()
        self.getters[layout] = got
        return got


@dataclass
class _OdfvRead:
    odfv: Any
    request_columns: list[str]
    #: source view name -> its features the udf needs (all of them)
    inputs: dict[str, list[str]]
    outputs: list[tuple[str, str]]  # (feature in the udf result, output column)


@dataclass
class _Plan:
    views: list[_ViewRead]
    hidden: dict[str, list[str]]  # view -> features read only as on-demand inputs
    odfvs: list[_OdfvRead]
    columns: list[str]  # output feature columns, in request order
    join_keys: list[str]
    expires: float


class OnlineResponse:
    """Feature values per entity row, each with its event time and a ``stale`` flag.

    ``to_dict()`` -> ``{join key: [...], feature: [...], "feature__event_timestamp": [...],
    "feature__stale": [...]}`` (``metadata=False`` gives Feast's shape); ``to_df()``.
    """

    __slots__ = ("entities", "values", "event_timestamps", "stale", "_columns")

    def __init__(
        self,
        entities: dict[str, list[Any]],
        values: dict[str, list[Any]],
        event_timestamps: dict[str, list[datetime | None]],
        stale: dict[str, list[bool]],
        columns: list[str],
    ) -> None:
        self.entities, self.values = entities, values
        self.event_timestamps, self.stale, self._columns = event_timestamps, stale, columns

    def to_dict(self, *, metadata: bool = True) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = dict(self.entities)
        for col in self._columns:
            out[col] = self.values[col]
        if metadata:
            for col in self._columns:
                out[f"{col}__event_timestamp"] = self.event_timestamps[col]
                out[f"{col}__stale"] = self.stale[col]
        return out

    def to_df(self, *, metadata: bool = False) -> Any:
        import pandas as pd

        return pd.DataFrame(self.to_dict(metadata=metadata))

    def __len__(self) -> int:
        return len(next(iter(self.entities.values()), []))

    def __repr__(self) -> str:
        return f"OnlineResponse({len(self)} rows, features={self._columns})"


def _parse_refs(features: Sequence[str]) -> list[tuple[str, str]]:
    if isinstance(features, str) or not isinstance(features, Sequence) or not features:
        raise Invalid(
            f"features must be a non-empty list of 'view:feature' strings; got "
            f"{features!r} instead",
            field="features",
        )
    refs = []
    for ref in features:
        if (
            not isinstance(ref, str)
            or ref.count(":") != 1
            or ref.startswith(":")
            or ref.endswith(":")
        ):
            raise Invalid(
                f"a feature reference looks like 'view:feature'; got {ref!r} instead",
                field="features",
            )
        view, feat = ref.split(":")
        refs.append((view, feat))
    return refs


def _view_read(store: Any, view: Any, names: list[str], full: bool) -> _ViewRead:
    fields = {f.name: f for f in view.schema}
    feats = []
    for n in names:
        out = f"{view.name}__{n}" if full else n
        feats.append((n, out, _DECODERS.get(fields[n].dtype)))
    ttl = None if view.ttl is None else int(view.ttl.total_seconds() * 1e6)
    return _ViewRead(
        view.name, online_view_key(store, view.name), tuple(view.join_keys), ttl, feats
    )


def _build_plan(store: Any, features: Sequence[str], full: bool) -> _Plan:
    from loopstack.features._definitions import FeatureView, OnDemandFeatureView

    defs: dict[str, Any] = {}
    wanted: dict[str, list[str]] = {}  # view -> requested features, in order
    columns: list[str] = []
    for view_name, feat in _parse_refs(features):
        if view_name not in defs:
            defs[view_name] = store.get_feature_view(view_name)  # NotFound names it
        view = defs[view_name]
        names = view.feature_names
        if feat == "*":
            chosen = names
        elif feat not in names:
            raise NotFound(
                f"feature view {view_name!r} has no feature {feat!r}; it has "
                f"{', '.join(names) or 'none'}"
            )
        else:
            chosen = [feat]
        for n in chosen:
            if n not in wanted.setdefault(view_name, []):
                wanted[view_name].append(n)
                out = f"{view_name}__{n}" if full else n
                if out in columns:
                    raise Invalid(
                        f"two features are both called {out!r}; ask for full_feature_names=True",
                        field="features",
                    )
                columns.append(out)
    views: dict[str, _ViewRead] = {}
    hidden: dict[str, list[str]] = {}
    odfvs: list[_OdfvRead] = []
    join_keys: list[str] = []
    for view_name, names in wanted.items():
        view = defs[view_name]
        if isinstance(view, OnDemandFeatureView):
            inputs = {}
            for src in view.source_views:
                inputs[src.name] = src.feature_names
                known = views.get(src.name)
                have = [f[0] for f in known.features] if known else []
                extra = [n for n in src.feature_names if n not in have]
                if extra:
                    hidden.setdefault(src.name, []).extend(
                        n for n in extra if n not in hidden.get(src.name, [])
                    )
                if src.name not in defs:
                    defs[src.name] = src
                for k in src.join_keys:
                    if k not in join_keys:
                        join_keys.append(k)
            request = [f.name for r in view.request_sources for f in r.schema]
            odfvs.append(
                _OdfvRead(
                    view, request, inputs, [(n, f"{view_name}__{n}" if full else n) for n in names]
                )
            )
        elif isinstance(view, FeatureView):
            views[view_name] = _view_read(store, view, names, full)
            for k in view.join_keys:
                if k not in join_keys:
                    join_keys.append(k)
    # on-demand inputs are read under an internal name, never shown in the output
    for src_name, names in hidden.items():
        in_views = views.get(src_name)
        extra = [n for n in names if not in_views or n not in [f[0] for f in in_views.features]]
        if not extra:
            continue
        src_view = defs[src_name]
        hidden_read = _view_read(store, src_view, extra, True)
        hidden_read.features = [(n, f"\x00{src_name}__{n}", d) for n, _, d in hidden_read.features]
        if in_views:
            in_views.features.extend(hidden_read.features)
        else:
            views[src_name] = hidden_read
    return _Plan(
        list(views.values()), hidden, odfvs, columns, join_keys, time.monotonic() + _PLAN_TTL_S
    )


def _plan(store: Any, features: Sequence[str], full: bool) -> _Plan:
    cache: dict[Any, _Plan] | None = getattr(store, "_online_plans", None)
    if cache is None:
        cache = store._online_plans = {}
    key = (tuple(features), full) if isinstance(features, list | tuple) else None
    plan = cache.get(key) if key is not None else None
    if plan is None or plan.expires < time.monotonic():
        plan = _build_plan(store, features, full)
        if key is not None:
            if len(cache) > 1024:
                cache.clear()
            cache[key] = plan
    return plan


def _rows(entity_rows: Any) -> list[dict[str, Any]]:
    if isinstance(entity_rows, dict):
        # Feast's columnar form: {"driver_id": [1, 2]}
        cols = {k: v if isinstance(v, list | tuple) else [v] for k, v in entity_rows.items()}
        n = len(next(iter(cols.values()), []))
        return [{k: v[i] for k, v in cols.items()} for i in range(n)]
    if isinstance(entity_rows, list):
        return entity_rows
    if hasattr(entity_rows, "to_dict") and hasattr(entity_rows, "columns"):
        from loopstack.features._materialize import pandas_to_arrow

        rows: list[dict[str, Any]] = pandas_to_arrow(entity_rows).to_pylist()
        return rows
    raise Invalid(
        f"entity_rows must be a list of dicts or a DataFrame; got "
        f"{type(entity_rows).__name__} instead",
        field="entity_rows",
    )


def get_online_features(
    store: Any, entity_rows: Any, features: Sequence[str], full_feature_names: bool = False
) -> OnlineResponse:
    """The newest online values of ``features`` for each entity row.

    >>> store.get_online_features([{"driver_id": 1001}], ["driver_stats:conv_rate"]).to_dict()
    """
    plan = _plan(store, features, full_feature_names)
    rows = _rows(entity_rows)
    n = len(rows)
    online = online_store(store)
    now_us = int(time.time() * 1e6)
    values: dict[str, list[Any]] = {}
    stamps: dict[str, list[Any]] = {}
    stale: dict[str, list[bool]] = {}
    for vr in plan.views:
        jk = vr.join_keys
        try:
            if len(jk) == 1:
                k0 = jk[0]
                keys = [str(r[k0]) for r in rows]
            else:
                keys = [encode_key(tuple(r[k] for k in jk)) for r in rows]
        except KeyError as exc:
            raise _missing_key(rows, jk, vr.name) from exc
        except TypeError as exc:
            raise Invalid(
                f"each entity row must be a dict of join keys; got {rows!r}", field="entity_rows"
            ) from exc
        found = online.read(vr.online_key, keys)
        nulls = (None,) * len(vr.features)
        picked: list[Sequence[Any]] = [nulls] * n
        ts_col: list[Any] = [None] * n
        stale_col = [False] * n
        ttl = vr.ttl_us
        getters = vr.getters
        for i, hit in enumerate(found):
            if hit is None:
                continue
            ts, blob = hit
            if type(blob) is bytes and blob[:1] != b"{":  # binary (see online._rows)
                row = decode_row(blob)
                get = getters.get(row[1])
                picked[i] = (get or vr.getter(row[1]))(row)
            else:  # JSON, for values a binary row cannot hold
                obj = decode_json(blob)
                picked[i] = tuple(obj.get(f[0]) for f in vr.features)
            ts_col[i] = datetime.fromtimestamp(ts / 1e6, tz=UTC)
            if ttl is not None and now_us - ts > ttl:
                stale_col[i] = True
        cols = list(zip(*picked, strict=True)) if n else [()] * len(vr.features)
        for j, (_, out, dec) in enumerate(vr.features):
            values[out] = list(cols[j]) if dec is None else [dec(v) for v in cols[j]]
            stamps[out] = ts_col
            stale[out] = stale_col
        stamps[f"\x00{vr.name}"] = ts_col
        stale[f"\x00{vr.name}"] = stale_col
    for od in plan.odfvs:
        _run_odfv(od, rows, values, stamps, stale, full_feature_names)
    entities = {k: [r.get(k) for r in rows] for k in plan.join_keys}
    return OnlineResponse(entities, values, stamps, stale, plan.columns)


def _missing_key(rows: list[dict[str, Any]], join_keys: Sequence[str], view: str) -> Invalid:
    for i, r in enumerate(rows):
        for k in join_keys:
            if k not in r:
                return Invalid(
                    f"entity row {i} has no join key {k!r} (needed by feature view "
                    f"{view!r}); it has {', '.join(map(str, r)) or 'no keys'}",
                    field=k,
                )
    return Invalid(f"an entity row lacks a join key of {view!r}", field="entity_rows")


def _run_odfv(
    od: _OdfvRead,
    rows: list[dict[str, Any]],
    values: dict[str, list[Any]],
    stamps: dict[str, list[Any]],
    stale: dict[str, list[bool]],
    full: bool,
) -> None:
    import pandas as pd

    n = len(rows)
    data: dict[str, list[Any]] = {}
    for col in od.request_columns:
        try:
            data[col] = [r[col] for r in rows]
        except KeyError as exc:
            i = next(i for i, r in enumerate(rows) if col not in r)
            raise Invalid(
                f"entity row {i} has no request value {col!r} (needed by on-demand "
                f"feature view {od.odfv.name!r})",
                field=col,
            ) from exc
    oldest: list[Any] = [None] * n
    any_stale = [False] * n
    dtypes = {(v.name, f.name): f.dtype for v in od.odfv.source_views for f in v.schema}
    for src, names in od.inputs.items():
        for name in names:
            got = values.get(f"\x00{src}__{name}")
            if got is None:
                got = values.get(f"{src}__{name}") if full else values.get(name)
            got = got if got is not None else [None] * n
            if None in got:  # through Arrow, as training builds it: a null int is NaN, not None
                got = _as_training_column(got, dtypes.get((src, name)))
            data[name] = got
        ts = stamps.get(f"\x00{src}", [None] * n)
        st = stale.get(f"\x00{src}", [False] * n)
        for i in range(n):
            if ts[i] is not None and (oldest[i] is None or ts[i] < oldest[i]):
                oldest[i] = ts[i]
            any_stale[i] = any_stale[i] or st[i]
    out = od.odfv.transform(pd.DataFrame(data))
    for name, col in od.outputs:
        series = out[name]
        values[col] = [None if pd.isna(v) else v for v in series.tolist()]
        stamps[col] = oldest
        stale[col] = any_stale


def _as_training_column(values: list[Any], dtype: str | None) -> Any:
    """A source feature with nulls as the offline join hands it to an on-demand view
    (an Arrow column of the declared type, to pandas): ``[None]`` is NaN, not ``object``."""
    import pyarrow as pa

    from loopstack.features._types import arrow_type

    if dtype is None:
        return values
    try:
        return pa.array(values, type=arrow_type(dtype)).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return values
