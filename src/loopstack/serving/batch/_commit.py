"""The output of a batch job, assembled while it runs: finished parts are appended to a
temporary file in chunk order (a part that finishes early waits for those before it),
so the copy overlaps the scoring instead of following it; at the end the file is
renamed onto the output and the staging directory removed. Parts stay in the staging
directory until then, so a killed job resumes from them and the temporary file, never
the output, is what it loses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopstack.errors import Invalid

__all__ = ["Committer", "part_name"]


def part_name(chunk: Any) -> str:
    """The staging file name of a chunk's part."""
    return f"part-{chunk.chunk_id}-{chunk.fingerprint}.parquet"


class Committer:
    """Appends the parts of ``chunks`` to ``<output>``'s temporary file in order.

    >>> c = Committer(chunks, staging, out, done)   # doctest: +SKIP
    >>> c.add(chunk_id)  # as each finishes; then c.finish() or, on failure, c.abort()
    """

    def __init__(self, chunks: list[Any], staging: Path, out: Path, done: set[str]) -> None:
        self.chunks, self.staging, self.out = chunks, staging, out
        self.tmp = out.with_name(f".{out.name}.committing")
        self.done = set(done)
        self.next = 0
        self.writer: pq.ParquetWriter | None = None
        self._drain()

    def add(self, chunk_id: str) -> None:
        """Chunk ``chunk_id``'s part is written: append every part now in order."""
        self.done.add(chunk_id)
        self._drain()

    def _drain(self) -> None:
        appended = False
        while self.next < len(self.chunks) and self.chunks[self.next].chunk_id in self.done:
            part = pq.ParquetFile(self.staging / part_name(self.chunks[self.next]))
            for i in range(part.num_row_groups):
                table = part.read_row_group(i)
                if self.writer is None:
                    self.writer = pq.ParquetWriter(self.tmp, table.schema)
                self.writer.write_table(table)
            self.next += 1
            appended = True
        if appended:  # the parent's peak stays one part, however long the job
            pa.default_memory_pool().release_unused()

    def finish(self) -> None:
        """Every part appended: the file becomes the output; the staging directory goes."""
        if self.next != len(self.chunks):
            missing = self.chunks[self.next].chunk_id
            raise RuntimeError(f"chunk {missing} never finished")  # a bug, not bad input
        if self.writer is None:
            raise Invalid("the input has no rows: nothing to write", field="input")
        self.writer.close()
        self.writer = None
        os.replace(self.tmp, self.out)
        shutil.rmtree(self.staging, ignore_errors=True)

    def abort(self) -> None:
        """Drop the temporary file (the parts stay, for a resume)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.tmp.exists():
            self.tmp.unlink()
