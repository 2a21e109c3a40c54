"""Signed chain heads kept outside the database, so a cut or rewritten log is caught.

An anchor is one JSON line ``{"seq", "hash", "kid", "ts", "mac"}``: the chain's head
at some moment and an HMAC of it under an audit key. Anchors are appended to a local
file or to an object in any fsspec filesystem (``s3://bucket/audit/anchors.jsonl``);
an object store has no append, so the object is read and written back whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopstack.errors import Invalid, StoreUnavailable

__all__ = ["Anchor", "anchor_mac_text", "append_anchor", "read_anchors"]


@dataclass(frozen=True)
class Anchor:
    """One signed head: event ``seq`` had ``hash`` at ``ts`` (ms), signed under ``kid``."""

    line: int
    seq: int
    hash: str
    kid: str
    ts: int
    mac: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON line's fields."""
        return {"seq": self.seq, "hash": self.hash, "kid": self.kid, "ts": self.ts, "mac": self.mac}


def anchor_mac_text(seq: int, hash_: str, ts: int) -> str:
    """What an anchor's MAC covers."""
    return f"loopstack-anchor\x1f{seq}\x1f{hash_}\x1f{ts}"


def _is_local(target: str) -> bool:
    return "://" not in target or target.startswith("file://")


def _local_path(target: str) -> Path:
    return Path(target.removeprefix("file://")).expanduser()


def append_anchor(target: str, anchor: dict[str, Any]) -> None:
    """Append one anchor line to ``target`` (a path or an fsspec URL)."""
    line = (json.dumps(anchor, sort_keys=True) + "\n").encode()
    try:
        if _is_local(target):
            path = _local_path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        import fsspec

        fs, path = fsspec.core.url_to_fs(target)
        old = fs.cat_file(path) if fs.exists(path) else b""
        fs.pipe_file(path, old + line)
    except OSError as exc:
        raise StoreUnavailable(f"cannot append an audit anchor to {target}: {exc}") from exc


def read_anchors(target: str) -> list[Anchor]:
    """Every anchor in ``target``, in file order ([] when it does not exist)."""
    try:
        if _is_local(target):
            path = _local_path(target)
            if not path.exists():
                return []
            raw = path.read_bytes()
        else:
            import fsspec

            fs, path_ = fsspec.core.url_to_fs(target)
            if not fs.exists(path_):
                return []
            raw = fs.cat_file(path_)
    except OSError as exc:
        raise StoreUnavailable(f"cannot read the audit anchors at {target}: {exc}") from exc
    anchors = []
    for n, text in enumerate(raw.decode(errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            d = json.loads(text)
            anchors.append(
                Anchor(n, int(d["seq"]), str(d["hash"]), str(d["kid"]), int(d["ts"]), str(d["mac"]))
            )
        except (ValueError, KeyError, TypeError):
            raise Invalid(
                f"line {n} of the audit anchors at {target} must be a JSON object with seq, "
                f"hash, kid, ts and mac; got {text[:120]!r}",
                field="anchors",
            ) from None
    return anchors
