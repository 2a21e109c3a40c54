"""Mergeable per-column profiles: fixed-layout sketches that add up batch by batch.

A numeric column (floats, integers with many values, timestamps and dates as epoch
nanoseconds) keeps counts over fixed bin edges taken from the reference (quantile-spaced,
``bins`` of them, so 257 edges by default from its minimum to its maximum), with an
underflow bin (below the first edge) and an overflow bin (above the last), plus count,
nulls (NaN counts as null, as in pandas), infinities, min, max, sum and sum of squares,
and the sum of the values in each bin (so a Wasserstein distance between two profiles
is exact wherever the two CDFs do not cross inside a bin).
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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopstack.errors import Invalid

__all__ = ["ColumnProfile", "Profile"]

NUMERIC, CATEGORICAL, UNSUPPORTED = "numeric", "categorical", "unsupported"
DEFAULT_BINS = 256
DEFAULT_MAX_CATEGORIES = 1000
#: an integer column with at most this many distinct values is categorical (as in drift)
MAX_CATEGORIES_NUMERIC = 20
#: how many of the values pooled in "other" a categorical profile keeps by name
OTHER_TOP = 20


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
    bin_sums: np.ndarray = field(default_factory=lambda: np.zeros(0))  #: per bin (numeric)
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
        counts, bin_sums = (
            (self.counts + other.counts, self.bin_sums + other.bin_sums)
            if self.counts.size == other.counts.size
            else (self, other)[0 if self.counts.size else 1]._bins()
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
            bin_sums=bin_sums,
            min=min(mins) if mins else None,
            max=max(maxs) if maxs else None,
            sum=self.sum + other.sum,
            sum_sq=self.sum_sq + other.sum_sq,
            categories=list(self.categories),
            other_top=_top(top),
        )

    def _bins(self) -> tuple[np.ndarray, np.ndarray]:
        return self.counts.copy(), self.bin_sums.copy()

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
            "bin_sums": [float(c) for c in self.bin_sums],
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
                bin_sums=np.asarray(d.get("bin_sums", []), dtype=float),
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
    """The Arrow type's name; large and view strings and dictionaries named by their values."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    name = str(t)
    return {"large_string": "string", "string_view": "string"}.get(name, name)


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
