"""The canonical Parquet encoding of a table, whose sha256 is the dataset's content digest.

Canonical form: columns in their order with Arrow types normalised (large and view
strings/binaries to their plain form, dictionaries to their value type), no schema or
field metadata (so no pandas index metadata), one chunk per column, written by
pyarrow with fixed settings (zstd level 3, 1M-row row groups, statistics on). Parquet
stores only the non-null values, so whatever sits under a null slot in memory does not
matter. The same rows and types therefore give the same bytes whether they came as a
DataFrame, an Arrow table or a Parquet file, and the stored file's own sha256 *is*
the digest: the blob store deduplicates it for free. (A different pyarrow release may
encode the same table differently; the digest is stable for a given writer.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["canonical_table", "file_sha256", "write_canonical"]

_ROW_GROUP = 1 << 20


def _canonical_type(t: pa.DataType) -> pa.DataType:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _canonical_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_null(t):
        return pa.string()
    return t


def canonical_table(table: pa.Table) -> pa.Table:
    """``table`` with normalised types, no metadata and one chunk per column."""
    import pyarrow as pa

    fields = [pa.field(str(f.name), _canonical_type(f.type), nullable=True) for f in table.schema]
    schema = pa.schema(fields)
    if not table.schema.equals(schema, check_metadata=True):
        table = pa.Table.from_arrays(
            [table.column(i) for i in range(table.num_columns)], names=[f.name for f in fields]
        ).cast(schema)
    return table.combine_chunks()


def write_canonical(table: pa.Table, dest: Path) -> str:
    """Write ``table`` (already canonical) to ``dest`` as Parquet; returns the file's sha256."""
    import pyarrow.parquet as pq

    pq.write_table(
        table,
        dest,
        compression="zstd",
        compression_level=3,
        row_group_size=_ROW_GROUP,
        write_statistics=True,
        use_dictionary=True,
        store_schema=True,
    )
    return file_sha256(dest)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
