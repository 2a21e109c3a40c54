"""A batch job's plan: the input files (a file, a directory or a glob), checked against
the model's signature from their Parquet footers before any work, and cut into chunks of
whole row groups (about ``chunk_rows`` rows each). Chunk ids depend only on the files and
their row groups, so a resumed job finds the chunks it already wrote."""

from __future__ import annotations

import glob as globbing
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from loopstack.errors import Invalid

__all__ = ["Chunk", "InputFile", "input_columns", "plan_chunks", "read_inputs", "resolve_inputs"]


@dataclass(frozen=True)
class InputFile:
    """One Parquet input: its path, row groups' row counts and first global row id."""

    path: str
    row_groups: tuple[int, ...]
    first_row: int
    fingerprint: str  # size, mtime and footer digest: a changed file is a new file


@dataclass(frozen=True)
class Chunk:
    """Whole row groups of one file, scored and written as one part file."""

    chunk_id: str
    path: str
    row_groups: tuple[int, ...]
    first_row: int  # the global row id of the chunk's first row
    rows: int
    fingerprint: str


def resolve_inputs(spec: str | os.PathLike[str] | list[str]) -> list[str]:
    """The Parquet files ``spec`` names (a file, a directory's ``*.parquet``, a glob, a
    list of those), sorted; ``Invalid`` when nothing matches."""
    specs = [str(s) for s in spec] if isinstance(spec, list) else [str(spec)]
    files: list[str] = []
    for item in specs:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file())
            if not found:
                raise Invalid(f"the input directory {item!r} has no .parquet files", field="input")
        elif path.is_file():
            found = [str(path)]
        else:
            found = sorted(p for p in globbing.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise Invalid(
                    f"the input {item!r} is neither a file nor a directory, and as a glob "
                    "it matches no file",
                    field="input",
                )
        files.extend(found)
    return list(dict.fromkeys(os.path.abspath(f) for f in files))


def _open(path: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        raise Invalid(
            f"the input file {path} is not a readable Parquet file ({exc})", field="input"
        ) from exc


def input_columns(path: str) -> list[str]:
    """The column names in the footer of the Parquet file ``path``."""
    return list(_open(path).schema_arrow.names)


def read_inputs(paths: list[str], needed: list[str]) -> list[InputFile]:
    """Each file's footer, checked to have the ``needed`` columns (named if missing)."""
    out: list[InputFile] = []
    first = 0
    for path in paths:
        meta = _open(path).metadata
        names = set(meta.schema.names)
        missing = [c for c in needed if c not in names]
        if missing:
            raise Invalid(
                f"the input file {path} lacks column(s) {', '.join(map(repr, missing))} "
                "that the model's signature (or the key columns, or the features' entity "
                f"keys) need; it has {sorted(names)}",
                field="input",
            )
        counts = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
        stat = os.stat(path)
        digest = hashlib.sha256(
            f"{stat.st_size}:{stat.st_mtime_ns}:{meta.num_rows}:{counts}".encode()
        ).hexdigest()[:16]
        out.append(InputFile(path, counts, first, digest))
        first += sum(counts)
    return out


def plan_chunks(files: list[InputFile], chunk_rows: int) -> list[Chunk]:
    """Consecutive row groups of each file, about ``chunk_rows`` rows a chunk (a row
    group larger than that is a chunk by itself)."""
    chunks: list[Chunk] = []
    for index, f in enumerate(files):
        groups: list[int] = []
        start, rows, row = f.first_row, 0, f.first_row
        for g, n in enumerate(f.row_groups):
            if groups and rows + n > chunk_rows:
                chunks.append(_chunk(index, f, groups, start, rows))
                start, groups, rows = row, [], 0
            groups.append(g)
            rows += n
            row += n
        if groups:
            chunks.append(_chunk(index, f, groups, start, rows))
    return chunks


def _chunk(index: int, f: InputFile, groups: list[int], start: int, rows: int) -> Chunk:
    return Chunk(f"{index:05d}-{groups[0]:06d}", f.path, tuple(groups), start, rows, f.fingerprint)
