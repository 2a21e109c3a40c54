"""``profile(data)``: a mergeable ``Profile`` built batch by batch, vectorized.

Each batch is an Arrow table; numeric columns go through numpy (one ``searchsorted`` and
one ``bincount`` per batch), categorical ones through ``pyarrow.compute.value_counts``
and ``index_in``: no Python work per row, and memory bounded by one batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from loopstack.errors import Invalid
from loopstack.monitoring._profile import (
    CATEGORICAL,
    DEFAULT_BINS,
    DEFAULT_MAX_CATEGORIES,
    MAX_CATEGORIES_NUMERIC,
    NUMERIC,
    OTHER_TOP,
    UNSUPPORTED,
    ColumnProfile,
    Profile,
    _class,
    _class_of_dtype,
    _dtype,
    _top,
)

__all__ = ["profile"]

#: rows per batch when a dataset version is streamed from its Parquet file
_PARQUET_BATCH = 262_144


def _new_column(name: str, arr: Any) -> ColumnProfile:
    """An empty profile whose kind follows ``drift``'s rules; the first values set the layout."""
    import pyarrow.compute as pc

    cls = _class(arr.type)
    if cls == "integer":
        few = pc.count_distinct(arr).as_py() <= MAX_CATEGORIES_NUMERIC
        kind = CATEGORICAL if few else NUMERIC
    elif cls in ("float", "timestamp", "date"):
        kind = NUMERIC
    elif cls in ("bool", "string", "null"):
        kind = CATEGORICAL
    else:
        kind = UNSUPPORTED
    counts = np.zeros(1 if kind == CATEGORICAL else 0, dtype=np.int64)
    return ColumnProfile(name=name, kind=kind, dtype=_dtype(arr.type), counts=counts)


def _like_column(ref: ColumnProfile, arr: Any) -> ColumnProfile | None:
    """An empty profile with the reference's layout, or None when the types do not fit."""
    cls = _class(arr.type)
    ref_cls = _class_of_dtype(ref.dtype)
    numbers = ("integer", "float", "timestamp", "date")
    if cls != "null":
        if ref.kind == NUMERIC and cls not in numbers:
            return None
        if ref.kind == CATEGORICAL and ref_cls != "null" and cls != ref_cls:
            return None
        if ref.kind == UNSUPPORTED:
            return None
    return ColumnProfile(
        name=ref.name,
        kind=ref.kind,
        dtype=_dtype(arr.type),
        edges=ref.edges,
        counts=np.zeros_like(ref.counts),
        bin_sums=np.zeros_like(ref.bin_sums),
        categories=list(ref.categories),
    )


def _floats(arr: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    cls = _class(arr.type)
    if cls == "date":
        arr = pc.cast(arr, pa.timestamp("ns"))
    if cls in ("timestamp", "date"):
        arr = pc.cast(arr, pa.int64())
    floats = pc.cast(arr, pa.float64(), safe=False)  # epoch ns exceed 2**53: rounding is fine
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=float)


def _edges(values: np.ndarray, bins: int) -> np.ndarray:
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    return np.repeat(edges, 2) if edges.size == 1 else edges


def _add_numeric(cp: ColumnProfile, arr: Any, bins: int | None) -> None:
    v = _floats(arr)
    nan = int(np.isnan(v).sum())
    finite = v[np.isfinite(v)]
    cp.nulls += nan
    cp.count += v.size - nan
    cp.non_finite += v.size - nan - finite.size
    if finite.size == 0:
        return
    if cp.edges is None and bins is not None:
        cp.edges = _edges(finite, bins)
        cp.counts = np.zeros(cp.edges.size + 1, dtype=np.int64)
        cp.bin_sums = np.zeros(cp.edges.size + 1)
    lo, hi = float(finite.min()), float(finite.max())
    cp.min = lo if cp.min is None else min(cp.min, lo)
    cp.max = hi if cp.max is None else max(cp.max, hi)
    cp.sum += float(finite.sum())
    cp.sum_sq += float(np.dot(finite, finite))
    if cp.edges is not None:
        idx = np.searchsorted(cp.edges, finite, side="left")
        idx[finite == cp.edges[0]] = 1
        cp.counts += np.bincount(idx, minlength=cp.edges.size + 1)
        cp.bin_sums += np.bincount(idx, weights=finite, minlength=cp.edges.size + 1)


def _add_categorical(cp: ColumnProfile, arr: Any, max_categories: int | None) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    cp.nulls += arr.null_count
    if pa.types.is_null(arr.type) or arr.null_count == len(arr):
        return
    vc = pc.value_counts(arr.drop_null())
    values, counts = vc.field("values"), np.asarray(vc.field("counts"), dtype=np.int64)
    cp.count += int(counts.sum())
    if cp.categories:
        index = pc.index_in(values, value_set=pa.array(cp.categories, type=values.type))
        known = np.asarray(index.is_valid())
        idx = np.asarray(index.fill_null(0), dtype=np.int64)[known]
        cp.counts[idx] += counts[known]
        unknown = np.flatnonzero(~known)
    else:
        unknown = np.arange(counts.size)
    if unknown.size == 0:
        return
    order = unknown[np.argsort(-counts[unknown], kind="stable")]
    room = 0 if max_categories is None else max(0, max_categories - len(cp.categories))
    if room:
        new, order = order[:room], order[room:]
        cp.categories.extend(values.take(pa.array(new)).to_pylist())
        cp.counts = np.concatenate([cp.counts[:-1], counts[new], cp.counts[-1:]])
    if order.size:
        cp.counts[-1] += int(counts[order].sum())
        top = dict(cp.other_top)
        head = order[:OTHER_TOP]
        for v, c in zip(values.take(pa.array(head)).to_pylist(), counts[head], strict=True):
            top[v] = top.get(v, 0) + int(c)
        cp.other_top = _top(top)


def _from_pandas(df: Any) -> tuple[Any, dict[str, str]]:
    # pyarrow reads tz-aware columns through Series.values, which pandas 3.1 deprecates
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return _from_pandas_columns(df)


def _from_pandas_columns(df: Any) -> tuple[Any, dict[str, str]]:
    import pyarrow as pa

    errors = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError)
    names = [str(n) for n in df.columns]
    try:
        return pa.Table.from_pandas(df, preserve_index=False).rename_columns(names), {}
    except errors:
        pass  # some column Arrow cannot hold: convert one by one
    arrays, unsupported = [], {}
    for name in df.columns:
        series = df[name]
        try:
            arrays.append(pa.Table.from_pandas(df[[name]], preserve_index=False).column(0))
        except errors:
            unsupported[str(name)] = str(series.dtype)
            # stands in for the values: null where they are, so the null count holds
            missing = np.asarray(series.isna(), dtype=bool)
            arrays.append(pa.chunked_array([pa.array(np.zeros(len(df), bool), mask=missing)]))
    return pa.table(arrays, names=names), unsupported


def _as_table(item: Any, where: str) -> tuple[Any, dict[str, str]]:
    import pandas as pd
    import pyarrow as pa

    if isinstance(item, pd.DataFrame):
        return _from_pandas(item)
    if isinstance(item, pa.Table):
        return item.rename_columns([str(n) for n in item.column_names]), {}
    if isinstance(item, pa.RecordBatch):
        return pa.Table.from_batches([item]), {}
    raise Invalid(
        f"profile: {where} must be a pandas DataFrame, a pyarrow Table or RecordBatch; "
        f"got {type(item).__name__} instead"
    )


def _batches(data: Any, like: Profile | None) -> Iterator[tuple[Any, dict[str, str]]]:
    import pandas as pd
    import pyarrow as pa

    from loopstack.data import DatasetVersion

    if isinstance(data, pd.DataFrame | pa.Table | pa.RecordBatch):
        yield _as_table(data, "'data'")
        return
    if isinstance(data, DatasetVersion):
        if like is None:  # the layout needs every value: read the version whole
            yield data.to_arrow(), {}
            return
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(data.path).iter_batches(batch_size=_PARQUET_BATCH):
            yield pa.Table.from_batches([batch]), {}
        return
    if isinstance(data, str | bytes | dict) or not isinstance(data, Iterable):
        raise Invalid(
            "profile: 'data' must be a pandas DataFrame, a pyarrow Table or RecordBatch, a "
            f"DatasetVersion or an iterable of tables/batches; got {type(data).__name__} instead"
        )
    for i, item in enumerate(data):
        yield _as_table(item, f"item {i} of 'data'")


def profile(
    data: Any,
    *,
    like: Profile | None = None,
    columns: list[str] | None = None,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> Profile:
    """A mergeable ``Profile`` of ``data``, one batch at a time (bounded memory).

    ``data`` is a pandas DataFrame, a pyarrow Table or RecordBatch, a DatasetVersion or
    an iterable of those (consumed once, batch by batch). With ``like=reference`` every
    column the reference has keeps the reference's bin edges and categories, so the
    result merges with it and compares to it (new values go to the underflow/overflow
    bins or to "other"); columns it lacks get a layout of their own. Without ``like``
    the layout comes from the first batch: quantile edges of its finite values (the
    whole table for a DataFrame, Table or DatasetVersion; for a stream, profile a
    representative first batch or pass ``like``), while categories keep being added, up
    to ``max_categories``, as later batches bring new values.

    >>> ref = ls.monitoring.profile(train_df)
    >>> cur = ls.monitoring.profile(table_batches, like=ref)
    """
    if like is not None and not isinstance(like, Profile):
        raise Invalid(f"profile: 'like' must be a Profile or None; got {type(like).__name__}")
    if columns is not None and (
        isinstance(columns, str) or not all(isinstance(c, str) for c in columns)
    ):
        raise Invalid(f"profile: 'columns' must be a list of column names; got {columns!r}")
    for name, value, low in (("bins", bins, 2), ("max_categories", max_categories, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise Invalid(f"profile: {name!r} must be an integer >= {low}; got {value!r}")
    acc: dict[str, ColumnProfile] = {}
    grow: dict[str, bool] = {}
    rows = 0
    first = True
    for table, unsupported in _batches(data, like):
        names = [str(n) for n in table.column_names]
        if first:
            selected = list(columns) if columns is not None else names
            missing = [c for c in selected if c not in names]
            if missing:
                raise Invalid(
                    f"profile: 'columns' names {', '.join(map(repr, missing))}, not in the "
                    f"data (its columns: {', '.join(names)})"
                )
            for name in selected:
                arr = table.column(name)
                if name in unsupported:
                    acc[name] = ColumnProfile(name, UNSUPPORTED, unsupported[name])
                    continue
                ref = like.columns.get(name) if like is not None else None
                cp = _like_column(ref, arr) if ref is not None else None
                grow[name] = cp is None
                acc[name] = cp if cp is not None else _new_column(name, arr)
            first = False
        else:
            missing = [c for c in acc if c not in names]
            if missing:
                raise Invalid(
                    f"profile: a later batch lacks column(s) {', '.join(map(repr, missing))} "
                    "that the first batch had"
                )
        for name, cp in acc.items():
            arr = table.column(name)
            if name in unsupported and cp.kind != UNSUPPORTED:
                raise Invalid(
                    f"profile: column {name!r} of a later batch holds {unsupported[name]} "
                    "values Arrow cannot read; the first batch's were readable"
                )
            if cp.kind == NUMERIC:
                _add_numeric(cp, arr, bins if grow[name] else None)
            elif cp.kind == CATEGORICAL:
                _add_categorical(cp, arr, max_categories if grow[name] else None)
            else:
                cp.nulls += arr.null_count
                cp.count += len(arr) - arr.null_count
        rows += table.num_rows
    if first and like is not None:  # no batch at all: an empty window in the reference's layout
        names = list(columns) if columns is not None else list(like.columns)
        for name in names:
            ref = like.columns.get(name)
            if ref is None:
                raise Invalid(f"profile: 'columns' names {name!r}, not in the 'like' profile")
            acc[name] = ColumnProfile(
                name,
                ref.kind,
                ref.dtype,
                edges=ref.edges,
                counts=np.zeros_like(ref.counts),
                bin_sums=np.zeros_like(ref.bin_sums),
                categories=list(ref.categories),
            )
    return Profile(rows, acc)
