"""Ground truth that arrives later: written to the prediction log's ``feedback`` stream
(exactly as ``POST /endpoints/{name}/feedback`` writes it), joined back to the model's
rows, and ingested on a schedule from a labels table with a watermark.

A request's label is a scalar for a one-row request, or a JSON list aligned with the
request's rows (``row=`` groups per-row labels into that list). The latest label of a
request wins when several came.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopstack.store.events import EventLog

__all__ = ["default_events", "ingest_labels", "join_labels", "log_labels"]

FEEDBACK = "feedback"


def default_events() -> EventLog:
    """The current home's event log (the configured stores, the chosen project), as
    ``loopstack serve`` opens it for the prediction log."""
    from loopstack.auth import resolve_project
    from loopstack.config import settings
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog

    config = settings()
    stores = open_stores(config)
    return EventLog(stores, project_id=resolve_project(stores.db, config.project))


def _plain_label(value: Any, column: str, where: str) -> Any:
    """``value`` as plain JSON data, or Invalid naming the column and what came."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            value = value.tolist() if hasattr(value, "tolist") else value
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise Invalid(f"the {column!r} column holds {value} at {where}", field=column)
        return value
    if isinstance(value, list | tuple):
        return [_plain_label(v, column, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain_label(v, column, where) for k, v in value.items()}
    raise Invalid(
        f"the {column!r} column must hold JSON-able labels (numbers, strings, booleans, "
        f"lists); got {type(value).__name__} {str(value)[:60]!r} at {where}",
        field=column,
    )


def _as_frame(df: Any, role: str) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    if isinstance(df, pd.DataFrame):
        return df
    if isinstance(df, pa.Table):
        return df.to_pandas()
    raise Invalid(
        f"expected a pandas DataFrame or pyarrow Table of {role}; got {type(df).__name__}"
    )


def _utc(series: pd.Series, column: str) -> pd.Series:
    import pandas as pd

    try:
        out = pd.to_datetime(series, utc=True)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"the {column!r} column must hold timestamps; {exc}", field=column) from None
    if out.isna().any():
        raise Invalid(f"the {column!r} column holds null timestamps", field=column)
    return out


def _utc_us(series: pd.Series) -> Any:
    """Timestamps as naive UTC datetime64[us] (what Arrow takes as UTC)."""
    import pandas as pd

    stamps = pd.to_datetime(series, utc=True).dt.tz_convert(None)
    return stamps.to_numpy().astype("datetime64[us]")


def _feedback_table(
    df: pd.DataFrame, request_id: str, label: str, row: str | None, ts: str | None
) -> pa.Table:
    """The feedback rows for ``df`` (validated; Invalid before anything is written)."""
    import pandas as pd
    import pyarrow as pa

    from loopstack.serving._prediction_log import feedback_schema

    for column in (request_id, label, row, ts):
        if column is not None and column not in df.columns:
            raise Invalid(
                f"expected a column {column!r}; the labels have {list(map(str, df.columns))}",
                field=column,
            )
    ids = df[request_id]
    if ids.isna().any():
        first = int(ids.isna().to_numpy().nonzero()[0][0])
        raise Invalid(
            f"the {request_id!r} column holds null request ids (first at row {first})",
            field=request_id,
        )
    ids = ids.astype(str)
    labels = [_plain_label(v, label, f"row {i}") for i, v in enumerate(df[label].tolist())]
    stamps = (
        _utc(df[ts], ts) if ts is not None else pd.Series([pd.Timestamp.now(tz="UTC")] * len(df))
    )
    if row is None:
        out_ids, out_labels, out_ts = ids.tolist(), labels, list(stamps)
    else:
        rows = df[row]
        if rows.isna().any() or not pd.api.types.is_integer_dtype(rows) or (rows < 0).any():
            raise Invalid(
                f"the {row!r} column must hold row indexes >= 0 without nulls; got {rows.dtype}",
                field=row,
            )
        frame = pd.DataFrame(
            {"rid": ids.to_numpy(), "row": rows.to_numpy(), "ts": stamps.to_numpy()}
        )
        frame["label"] = labels
        if frame.duplicated(["rid", "row"]).any():
            dup = frame[frame.duplicated(["rid", "row"])].iloc[0]
            raise Invalid(f"request {dup.rid!r} has two labels for row {dup.row}", field=row)
        out_ids, out_labels, out_ts = [], [], []
        for rid, group in frame.groupby("rid", sort=False):
            aligned: list[Any] = [None] * (int(group["row"].max()) + 1)
            for r, v in zip(group["row"].tolist(), group["label"].tolist(), strict=True):
                aligned[r] = v
            out_ids.append(rid)
            out_labels.append(aligned)
            out_ts.append(group["ts"].max())
    texts = [json.dumps(v, separators=(",", ":"), allow_nan=False) for v in out_labels]
    return pa.table(
        {
            "ts": pa.array(_utc_us(pd.Series(out_ts)), type=pa.timestamp("us", "UTC")),
            "request_id": pa.array(out_ids, type=pa.string()),
            "label": pa.array(texts, type=pa.string()),
            "reward": pa.nulls(len(out_ids), type=pa.float64()),
        },
        schema=feedback_schema(),
    )


def log_labels(
    df: Any,
    *,
    request_id: str = "request_id",
    label: str = "label",
    row: str | None = None,
    ts: str | None = None,
    events: EventLog | None = None,
) -> int:
    """Write ground truth that arrived later to the ``feedback`` stream; the number of
    feedback rows written (one per request).

    ``df`` (DataFrame or Arrow table) has a request id and a label column; with ``row=``
    (a row index within the request) the labels of a request are grouped into a list
    aligned with its rows, else each label is written as it is (a scalar for a one-row
    request, or a list). ``ts`` names a timestamp column (the labels' time), else now.
    Bad input raises Invalid and writes nothing.
    """
    table = _feedback_table(_as_frame(df, "labels"), request_id, label, row, ts)
    if table.num_rows == 0:
        return 0
    (events or default_events()).append(FEEDBACK, table)
    return table.num_rows


def _explode(feedback: pd.DataFrame) -> pd.DataFrame:
    """One row per (request_id, row) from the latest label of each request."""
    import pandas as pd

    fb = feedback.dropna(subset=["request_id"]).copy()
    fb["_order"] = range(len(fb))
    fb = fb.sort_values(["ts", "_order"]).drop_duplicates("request_id", keep="last")
    fb = fb.reset_index(drop=True)  # explode below numbers rows by this index
    parsed = [json.loads(t) if isinstance(t, str) else None for t in fb["label"].tolist()]
    fb["label"] = [v if isinstance(v, list) else [v] for v in parsed]
    fb = fb.explode("label")
    fb["row"] = fb.groupby(level=0).cumcount().astype("int64")
    out = pd.DataFrame(
        {
            "request_id": fb["request_id"].astype(str).to_numpy(),
            "row": fb["row"].to_numpy(),
            "label": fb["label"].to_numpy(),
            "label_ts": pd.to_datetime(fb["ts"], utc=True).to_numpy(),
        }
    )
    out["label_ts"] = pd.to_datetime(out["label_ts"], utc=True)
    out.loc[out["label"].isna(), "label_ts"] = pd.NaT  # a row the list left without a label
    return out


def join_labels(flat: Any, feedback: Any) -> pd.DataFrame:
    """``flat`` (one row per model row: ``ts``, ``request_id``, ``row``, ...) with
    ``label``, ``label_ts`` and ``label_delay_s`` added from ``feedback`` (the stream's
    table): the latest label per request wins; a list label is spread over the request's
    rows by index, a scalar one is row 0's. Rows without a label keep nulls."""
    import numpy as np
    import pandas as pd

    frame = _as_frame(flat, "predictions").copy()
    fb = _as_frame(feedback, "feedback")
    for column in ("ts", "request_id"):
        if column not in frame.columns:
            raise Invalid(
                f"the predictions need a {column!r} column; got {list(frame.columns)}", field=column
            )
    for column in ("ts", "request_id", "label"):
        if column not in fb.columns:
            raise Invalid(
                f"the feedback needs a {column!r} column; got {list(fb.columns)}", field=column
            )
    if "row" not in frame.columns:
        frame["row"] = 0
    frame = frame.drop(
        columns=[c for c in ("label", "label_ts", "label_delay_s") if c in frame.columns]
    )
    labels = _explode(fb)
    left = frame.assign(_rid=frame["request_id"].astype(str), _row=frame["row"].astype("int64"))
    merged = left.merge(
        labels.rename(columns={"request_id": "_rid", "row": "_row"}),
        on=["_rid", "_row"],
        how="left",
    ).drop(columns=["_rid", "_row"])
    merged.index = frame.index
    ts = pd.to_datetime(merged["ts"], utc=True)
    merged["label_delay_s"] = (merged["label_ts"] - ts).dt.total_seconds().astype(np.float64)
    return merged


# -- scheduled ingestion ---------------------------------------------------------------

_KEY = re.compile(r"[^A-Za-z0-9_.-]+")


def _state_file() -> Path:
    from loopstack.config import settings

    return settings().home / "monitoring" / "label-watermarks.json"


def _read_state() -> dict[str, str]:
    path = _state_file()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Invalid(f"the label watermark file {path} is unreadable: {exc}") from None
    return data if isinstance(data, dict) else {}


def _write_state(state: dict[str, str]) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.replace(path)


def _read_source(
    source: str, table: str | None, ts_column: str, after: dt.datetime | None
) -> pd.DataFrame:
    import pandas as pd

    if "://" in source and table is not None:
        import sqlalchemy as sa

        engine = sa.create_engine(source)
        try:
            with engine.connect() as conn:
                try:
                    t = sa.Table(table, sa.MetaData(), autoload_with=conn)
                except sa.exc.NoSuchTableError:
                    raise Invalid(f"no table {table!r} at {engine.url!r}", field="table") from None
                if ts_column not in t.c:
                    raise Invalid(
                        f"the table {table!r} has no column {ts_column!r}", field="ts_column"
                    )
                query = sa.select(t)
                if after is not None:
                    param = (
                        after
                        if isinstance(t.c[ts_column].type, sa.DateTime)
                        and getattr(t.c[ts_column].type, "timezone", False)
                        else after.replace(tzinfo=None)
                    )
                    query = query.where(t.c[ts_column] >= param)
                rows = conn.execute(query).mappings().all()
        except sa.exc.SQLAlchemyError as exc:
            raise Invalid(
                f"could not read labels from {table!r}: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            engine.dispose()
        return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in t.c])
    if table is not None:
        raise Invalid(
            f"'table' goes with an SQLAlchemy URL; got the source {source!r}", field="table"
        )
    import duckdb

    try:
        quoted = source.replace("'", "''")
        relation = duckdb.sql(f"SELECT * FROM read_parquet('{quoted}', union_by_name=true)")
        assert relation is not None  # a SELECT always answers a relation
        return relation.df()
    except duckdb.Error as exc:
        raise Invalid(
            f"could not read Parquet labels at {source!r}: {exc}", field="source"
        ) from None


def _without_password(source: str) -> str:
    if "://" not in source:
        return source
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(source).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return source


def ingest_labels(
    source: str | Path,
    *,
    table: str | None = None,
    request_id: str = "request_id",
    label: str = "label",
    row: str | None = None,
    ts_column: str = "ts",
    state_key: str | None = None,
    events: EventLog | None = None,
) -> int:
    """Take the new rows of a labels table into the ``feedback`` stream; the number of
    feedback rows written.

    ``source`` is an SQLAlchemy URL with ``table``, or a Parquet path or glob. A
    watermark (the latest ``ts_column`` value taken) is kept per ``state_key`` (default:
    source and table) in ``<home>/monitoring/label-watermarks.json``, so each call takes
    only rows strictly after it and a re-run writes nothing twice. (Rows that arrive
    later with a time at or before the watermark are not taken: stamp labels when they
    are written.)
    """
    import pandas as pd

    source = str(source)
    key = state_key or _KEY.sub("_", f"{_without_password(source)}#{table or ''}")
    state = _read_state()
    mark = pd.Timestamp(state[key]) if key in state else None
    frame = _read_source(source, table, ts_column, None if mark is None else mark.to_pydatetime())
    if ts_column not in frame.columns:
        raise Invalid(
            f"the labels have no column {ts_column!r}; got {list(frame.columns)}", field="ts_column"
        )
    if frame.empty:
        return 0
    stamps = _utc(frame[ts_column], ts_column)
    if mark is not None:
        frame, stamps = frame[stamps > mark], stamps[stamps > mark]
    if frame.empty:
        return 0
    frame = frame.assign(**{ts_column: stamps})
    written = log_labels(
        frame, request_id=request_id, label=label, row=row, ts=ts_column, events=events
    )
    state = _read_state()
    state[key] = stamps.max().isoformat()
    _write_state(state)
    return written
