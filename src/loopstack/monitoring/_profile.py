"""Mergeable per-column profiles: fixed-layout sketches that add up batch by batch.

A numeric column (floats, integers with many values, timestamps and dates as epoch
nanoseconds) keeps counts over fixed bin edges taken from the reference (quantile-spaced,
``bins`` of them, so 257 edges by default from its minimum to its maximum), with an
underflow bin (below the first edge) and an overflow bin (above the last), plus count,
nulls (NaN counts as null, as in pandas), infinities, min, max, sum and sum of squares.
Bin ``0`` holds ``x < e[0]``, bin ``1`` holds ``e[0] <= x <= e[1]``, bin ``i`` holds
``e[i-1] < x <= e[i]`` and the last bin holds ``x > e[-1]``, so the cumulative counts are
the exact empirical CDF at every edge.

A categorical column (strings, booleans, integers with at most 20 distinct values, as
``drift`` decides) counts up to ``max_categories`` values and pools the rest in an
"other" bucket; it also keeps the few most frequent pooled values (``other_top``, an
approximation once merged: their counts are lower bounds; the ``other`` total is exact).

Profiles with the same layout (same columns, kinds, edges and categories) merge by adding
counts: ``profile(batch, like=reference)`` for every batch of a window, then ``sum``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopstack.errors import Invalid

__all__ = ["ColumnProfile", "Profile", "profile"]

NUMERIC, CATEGORICAL, UNSUPPORTED = "numeric", "categorical", "unsupported"
DEFAULT_BINS = 256
DEFAULT_MAX_CATEGORIES = 1000
#: an integer column with at most this many distinct values is categorical (as in drift)
MAX_CATEGORIES_NUMERIC = 20
#: how many of the values pooled in "other" a categorical profile keeps by name
OTHER_TOP = 20
#: rows per batch when a dataset version is streamed from its Parquet file
_PARQUET_BATCH = 262_144


@dataclass(eq=False)
class ColumnProfile:
    """One column's sketch: counts over a fixed layout (bin edges or categories).

    ``counts`` has ``len(edges) + 1`` bins for a numeric column (underflow, the bins
    between edges, overflow) and ``len(categories) + 1`` for a categorical one (the last
    is "other"). ``count`` is the non-null values, ``finite`` of them are binned.
    """

    name: str
    kind: str  #: "numeric", "categorical" or "unsupported"
    dtype: str  #: the Arrow type of the values (pandas dtype when Arrow could not hold them)
    count: int = 0
    nulls: int = 0
    non_finite: int = 0  #: +-inf values (numeric)
    edges: np.ndarray | None = None
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    min: float | None = None
    max: float | None = None
    sum: float = 0.0
    sum_sq: float = 0.0
    categories: list[Any] = field(default_factory=list)
    other_top: dict[Any, int] = field(default_factory=dict)

    @property
    def finite(self) -> int:
        """Values that are neither null nor infinite (the sample a numeric test sees)."""
        return self.count - self.non_finite

    @property
    def null_rate(self) -> float | None:
        """Nulls over rows; None for a column with no rows."""
        rows = self.count + self.nulls
        return self.nulls / rows if rows else None

    @property
    def mean(self) -> float | None:
        """Mean of the finite values (numeric)."""
        return self.sum / self.finite if self.kind == NUMERIC and self.finite else None

    @property
    def std(self) -> float | None:
        """Population standard deviation of the finite values (numeric)."""
        if self.kind != NUMERIC or not self.finite:
            return None
        mean = self.sum / self.finite
        return float(np.sqrt(max(0.0, self.sum_sq / self.finite - mean * mean)))

    @property
    def other(self) -> int:
        """Values pooled outside the category list (categorical)."""
        return int(self.counts[-1]) if self.kind == CATEGORICAL and self.counts.size else 0

    def layout(self) -> dict[str, Any]:
        """What must match for two profiles of this column to merge or compare."""
        return {
            "kind": self.kind,
            "edges": None if self.edges is None else [float(e) for e in self.edges],
            "categories": list(self.categories),
        }

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of both samples together; the layouts must be the same."""
        if not isinstance(other, ColumnProfile):
            raise Invalid(f"merge: expected a ColumnProfile; got {type(other).__name__} instead")
        mine, theirs = self.layout(), other.layout()
        if self.edges is None and other.kind == self.kind == NUMERIC and not self.finite:
            mine["edges"] = theirs["edges"]  # an empty side takes the other's bins
        elif other.edges is None and other.kind == self.kind == NUMERIC and not other.finite:
            theirs["edges"] = mine["edges"]
        if mine != theirs:
            what = next(k for k in ("kind", "edges", "categories") if mine[k] != theirs[k])
            raise Invalid(
                f"merge: column {self.name!r} has different {what} on the two sides "
                f"({_brief(mine[what])} vs {_brief(theirs[what])}); profile both with "
                f"like=<the same reference profile>"
            )
        edges = self.edges if self.edges is not None else other.edges
        counts = (
            self.counts + other.counts
            if self.counts.size == other.counts.size
            else (self.counts if self.counts.size else other.counts).copy()
        )
        top = dict(self.other_top)
        for v, c in other.other_top.items():
            top[v] = top.get(v, 0) + c
        mins = [m for m in (self.min, other.min) if m is not None]
        maxs = [m for m in (self.max, other.max) if m is not None]
        return ColumnProfile(
            name=self.name,
            kind=self.kind,
            dtype=self.dtype if self.dtype == other.dtype else f"{self.dtype}|{other.dtype}",
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            non_finite=self.non_finite + other.non_finite,
            edges=edges,
            counts=counts,
            min=min(mins) if mins else None,
            max=max(maxs) if maxs else None,
            sum=self.sum + other.sum,
            sum_sq=self.sum_sq + other.sum_sq,
            categories=list(self.categories),
            other_top=_top(top),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``other_top`` as [value, count] pairs)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "count": int(self.count),
            "nulls": int(self.nulls),
            "non_finite": int(self.non_finite),
            "edges": None if self.edges is None else [float(e) for e in self.edges],
            "counts": [int(c) for c in self.counts],
            "min": self.min,
            "max": self.max,
            "sum": float(self.sum),
            "sum_sq": float(self.sum_sq),
            "categories": list(self.categories),
            "other_top": [[v, int(c)] for v, c in self.other_top.items()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnProfile:
        """The inverse of ``to_dict``."""
        try:
            return cls(
                name=str(d["name"]),
                kind=str(d["kind"]),
                dtype=str(d["dtype"]),
                count=int(d["count"]),
                nulls=int(d["nulls"]),
                non_finite=int(d.get("non_finite", 0)),
                edges=None if d.get("edges") is None else np.asarray(d["edges"], dtype=float),
                counts=np.asarray(d.get("counts", []), dtype=np.int64),
                min=d.get("min"),
                max=d.get("max"),
                sum=float(d.get("sum", 0.0)),
                sum_sq=float(d.get("sum_sq", 0.0)),
                categories=list(d.get("categories", [])),
                other_top={v: int(c) for v, c in d.get("other_top", [])},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Invalid(
                f"ColumnProfile.from_dict: expected a dict from ColumnProfile.to_dict; "
                f"got {str(d)[:80]!r} ({exc})"
            ) from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColumnProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class Profile:
    """Per-column mergeable sketches of a table: ``profile(df)`` makes one.

    >>> ref = ls.monitoring.profile(train_df)
    >>> window = sum(ls.monitoring.profile(b, like=ref) for b in batches)
    >>> ls.monitoring.drift(ref, window)
    """

    num_rows: int
    columns: dict[str, ColumnProfile]

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    def merge(self, other: Profile) -> Profile:
        """Both profiles together; same columns and layouts, else Invalid."""
        if not isinstance(other, Profile):
            raise Invalid(f"merge: expected a Profile; got {type(other).__name__} instead")
        if set(self.columns) != set(other.columns):
            only_a = sorted(set(self.columns) - set(other.columns))
            only_b = sorted(set(other.columns) - set(self.columns))
            raise Invalid(
                f"merge: the profiles have different columns (only in the first: "
                f"{only_a or '-'}; only in the second: {only_b or '-'})"
            )
        cols = {n: c.merge(other.columns[n]) for n, c in self.columns.items()}
        return Profile(self.num_rows + other.num_rows, cols)

    def __add__(self, other: Profile) -> Profile:
        return self.merge(other)

    def __radd__(self, other: Any) -> Profile:
        if isinstance(other, int) and other == 0:  # sum(profiles)
            return self
        return NotImplemented

    def layout_digest(self) -> str:
        """sha256 of the columns' layouts: equal digests merge and compare."""
        layout = {n: c.layout() for n, c in sorted(self.columns.items())}
        return hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "num_rows": int(self.num_rows),
            "columns": {n: c.to_dict() for n, c in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        """The inverse of ``to_dict``."""
        if not isinstance(d, dict) or "num_rows" not in d or "columns" not in d:
            raise Invalid(
                f"Profile.from_dict: expected a dict with 'num_rows' and 'columns'; "
                f"got {str(d)[:80]!r}"
            )
        return cls(
            int(d["num_rows"]), {n: ColumnProfile.from_dict(c) for n, c in d["columns"].items()}
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _brief(value: Any) -> str:
    if isinstance(value, list) and len(value) > 4:
        return f"[{len(value)} values: {value[0]!r} .. {value[-1]!r}]"
    return repr(value)


def _top(counts: dict[Any, int]) -> dict[Any, int]:
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:OTHER_TOP]
    return dict(items)


def _class(t: Any) -> str:
    import pyarrow as pa

    from loopstack.data._sql import kind_of

    return "null" if pa.types.is_null(t) else kind_of(t)


def _dtype(t: Any) -> str:
    """The Arrow type's name, with large and view string types named as plain strings."""
    name = str(t)
    return {"large_string": "string", "string_view": "string"}.get(name, name)


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
        categories=list(ref.categories),
    )


def _class_of_dtype(dtype: str) -> str:
    import pyarrow as pa

    try:
        return _class(pa.type_for_alias(dtype.split("|")[0]))
    except (ValueError, KeyError):
        if dtype.startswith("timestamp"):
            return "timestamp"
        if dtype.startswith(("decimal", "float", "double")):
            return "float"
        if dtype.startswith("dictionary"):
            return "string" if "values=string" in dtype else "other"
        return "other"


def _floats(arr: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    cls = _class(arr.type)
    if cls == "date":
        arr = pc.cast(arr, pa.timestamp("ns"))
    if cls in ("timestamp", "date"):
        arr = pc.cast(arr, pa.int64())
    return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)


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
    lo, hi = float(finite.min()), float(finite.max())
    cp.min = lo if cp.min is None else min(cp.min, lo)
    cp.max = hi if cp.max is None else max(cp.max, hi)
    cp.sum += float(finite.sum())
    cp.sum_sq += float(np.dot(finite, finite))
    if cp.edges is not None:
        idx = np.searchsorted(cp.edges, finite, side="left")
        idx[finite == cp.edges[0]] = 1
        cp.counts += np.bincount(idx, minlength=cp.edges.size + 1)


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
    import pyarrow as pa

    arrays, unsupported = [], {}
    for name in df.columns:
        series = df[name]
        try:
            arrays.append(pa.array(series, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            unsupported[str(name)] = str(series.dtype)
            arrays.append(pa.nulls(len(df)))
    return pa.table(arrays, names=[str(n) for n in df.columns]), unsupported


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
                categories=list(ref.categories),
            )
    return Profile(rows, acc)
