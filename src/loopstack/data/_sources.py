"""Turn what a user passes (DataFrame, Arrow table, Parquet/CSV path) into one Arrow table."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, NotFound

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ACCEPTED", "describe", "to_arrow"]

ACCEPTED = (
    "a pandas DataFrame, a pyarrow Table, a DatasetVersion, or the path of a Parquet "
    "file, a CSV file or a directory of Parquet files"
)


def describe(data: Any) -> str:
    """How an unexpected input is named in error messages."""
    text = repr(data)
    return f"{type(data).__name__} {text[:60] + '…' if len(text) > 60 else text}"


def _from_path(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not path.exists():
        raise NotFound(f"no file or directory at {str(path)!r}")
    try:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
            if not files:
                raise Invalid(
                    f"expected a directory of Parquet files; {str(path)!r} has no *.parquet file",
                    field="data",
                )
            return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            return pq.read_table(path)
        if suffix in (".csv", ".tsv") or path.name.lower().endswith((".csv.gz", ".tsv.gz")):
            delimiter = "\t" if ".tsv" in path.name.lower() else ","
            return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except (pa.ArrowInvalid, OSError) as exc:
        raise Invalid(f"cannot read {str(path)!r} as a table: {exc}", field="data") from exc
    raise Invalid(
        f"expected a .parquet or .csv file (or a directory of Parquet files); got "
        f"{str(path)!r} instead",
        field="data",
    )


def to_arrow(data: Any) -> pa.Table:
    """One in-memory Arrow table for any accepted input; nothing else is accepted."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, str | Path):
        return _from_path(Path(data))
    if hasattr(data, "to_arrow") and hasattr(data, "digest") and hasattr(data, "version"):
        return data.to_arrow()  # a DatasetVersion
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        frame = data
        if any(n is not None for n in frame.index.names):  # a named index is data: keep it
            frame = frame.reset_index()
        try:
            with warnings.catch_warnings():
                # pyarrow reads a tz-aware column through Series.values, which pandas 3.1
                # deprecates; the column keeps its time zone in Arrow all the same
                warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
                return pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise Invalid(
                f"cannot store this DataFrame as Arrow/Parquet: {exc}", field="data"
            ) from exc
    raise Invalid(f"expected {ACCEPTED}; got {describe(data)} instead", field="data")
