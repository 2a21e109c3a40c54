"""The keys that sign the audit chain, kept outside the metadata database, each with an id.

A key file holds one key a line, ``<key id>:<hex secret>``; the last one is active
(new events are signed with it), the others still verify the events made under
them. ``#`` starts a comment. A line ``legacy_until=<seq>`` says that the log may
start with that many unkeyed events (written before keys existed); beyond it an
unkeyed event is a forgery. Without any configured key, loopstack makes
``<LOOPSTACK_HOME>/audit.key`` (mode 0600) on the first audited write, recording
how many events the log held then as ``legacy_until``.

A key file of your own without that line accepts an unkeyed start of any length,
so someone who strips the key ids and recomputes plain links passes ``verify``
(anchors still catch it): write ``legacy_until=0`` into the file of a fresh install.

``LOOPSTACK_AUDIT_KEY`` (hex, or any text of 16 bytes or more) with
``LOOPSTACK_AUDIT_KEY_ID`` gives the active key directly; the file's keys still
verify older events. The protection is only as good as the key's hiding place:
keep the file (or the variable) where the database's administrators cannot read it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from loopstack.errors import Invalid

if TYPE_CHECKING:
    from loopstack.config import Settings

__all__ = ["AuditKeyring", "keyring_for"]

_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_RECHECK_S = 1.0  # how often a writer looks for a rotated key file


def _secret_of(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = text.encode()
    if len(raw) < 16:
        raise Invalid(
            f"an audit key must hold at least 16 bytes (32 hex digits); {where} holds {len(raw)}",
            field="audit_key",
        )
    return raw


def _check_kid(kid: str, where: str) -> str:
    if not _KID.match(kid):
        raise Invalid(
            f"an audit key id must be 1-64 letters, digits, '.', '_' or '-'; {where} has {kid!r}",
            field="audit_key_id",
        )
    return kid


class AuditKeyring:
    """The audit keys one configuration names: HMAC-SHA256 by key id, and the active id.

    Thread-safe. Reads the key file once, then re-reads it when it changes (checked at
    most once a second), so a rotation reaches running writers without a restart.
    """

    def __init__(
        self, path: Path | None, env_key: str | None = None, env_kid: str | None = None
    ) -> None:
        self.path = path
        self._env = (
            (
                _check_kid(env_kid or "env", "LOOPSTACK_AUDIT_KEY_ID"),
                _secret_of(env_key, "LOOPSTACK_AUDIT_KEY"),
            )
            if env_key
            else None
        )
        self._lock = threading.Lock()
        self._macs: dict[str, hmac.HMAC] = {}
        self._active: str | None = None
        self.legacy_until: int | None = None
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self.reload()

    @property
    def source(self) -> str:
        """Where the keys come from, for messages."""
        parts = [f"the key file {self.path}"] if self.path is not None else []
        if self._env:
            parts.insert(0, "LOOPSTACK_AUDIT_KEY")
        return " and ".join(parts) or "no configured key"

    @property
    def kids(self) -> list[str]:
        """Every known key id, oldest first."""
        return list(self._macs)

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload(self) -> None:
        """Read the key file (and the variable) again."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        macs: dict[str, hmac.HMAC] = {}
        active, legacy = None, None
        stamp = self._file_stamp()
        if stamp is not None and self.path is not None:
            for n, line in enumerate(self.path.read_text().splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                where = f"line {n} of {self.path}"
                if line.startswith("legacy_until="):
                    try:
                        legacy = int(line.partition("=")[2])
                    except ValueError:
                        raise Invalid(
                            f"{where} must read legacy_until=<seq>; got {line!r}",
                            field="audit_key_file",
                        ) from None
                    continue
                kid, sep, secret = line.partition(":")
                if not sep:
                    raise Invalid(
                        f"{where} must read <key id>:<hex secret>; got a line without ':'",
                        field="audit_key_file",
                    )
                macs[_check_kid(kid.strip(), where)] = hmac.new(
                    _secret_of(secret, where), digestmod=hashlib.sha256
                )
                active = kid.strip()
        if self._env:
            kid, raw = self._env
            macs[kid] = hmac.new(raw, digestmod=hashlib.sha256)
            active = kid
        self._macs, self._active, self.legacy_until = macs, active, legacy
        self._stamp = stamp
        self._next_check = time.monotonic() + _RECHECK_S

    def _refresh(self, *, now: bool = False) -> None:
        if not now and time.monotonic() < self._next_check:
            return
        with self._lock:
            if self._file_stamp() != self._stamp:
                self._load()
            else:
                self._next_check = time.monotonic() + _RECHECK_S

    def mac(self, kid: str, text: str) -> str | None:
        """The hex HMAC-SHA256 of ``text`` under key ``kid`` (None: no such key)."""
        base = self._macs.get(kid)
        if base is None:
            self._refresh(now=True)  # another process may have made or rotated the file
            base = self._macs.get(kid)
        if base is None:
            return None
        h = base.copy()
        h.update(text.encode())
        return h.hexdigest()

    def active(self, *, log_length: int = 0) -> str:
        """The id of the key new events are signed with; with none configured, make the
        default key file (recording ``log_length`` unkeyed events as legacy)."""
        self._refresh()
        if self._active is None:
            with self._lock:
                if self._active is None:
                    self._create(log_length)
        assert self._active is not None
        return self._active

    def _create(self, log_length: int) -> None:
        if self.path is None:
            raise Invalid(
                "no audit key is configured (LOOPSTACK_AUDIT_KEY_FILE)", field="audit_key"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kid = f"k1-{secrets.token_hex(3)}"
        body = (
            "# loopstack audit keys: <key id>:<hex secret>, the last line active.\n"
            "# Keep this file where the metadata database's administrators cannot read it.\n"
            f"legacy_until={log_length}\n{kid}:{secrets.token_hex(32)}\n"
        )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            self._load()
            if self._active is None:
                raise Invalid(
                    f"the audit key file {self.path} holds no key; add a line <key id>:<hex>",
                    field="audit_key_file",
                ) from None
            return
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        self._load()

    def rotate(self) -> str:
        """Append a new key to the key file, making it the active one; return its id."""
        if self.path is None:
            raise Invalid("no audit key file is configured to rotate", field="audit_key_file")
        if self._env:
            raise Invalid(
                "the active audit key comes from LOOPSTACK_AUDIT_KEY: rotate by setting a new "
                "LOOPSTACK_AUDIT_KEY and LOOPSTACK_AUDIT_KEY_ID and adding the old key as a "
                f"line <key id>:<hex> to {self.path}",
                field="audit_key",
            )
        with self._lock:
            self._load()
            n = len(self._macs) + 1
            kid = f"k{n}-{secrets.token_hex(3)}"
            if not self.path.exists():
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
            with self.path.open("a") as fh:
                fh.write(f"{kid}:{secrets.token_hex(32)}\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._load()
        return kid


_cache: dict[tuple[str | None, str | None, str | None], AuditKeyring] = {}
_cache_lock = threading.Lock()


def keyring_for(config: Settings) -> AuditKeyring:
    """The (process-wide, cached) keyring the configuration names."""
    path = config.audit_key_file or config.home / "audit.key"
    key = (str(path), config.audit_key, config.audit_key_id)
    with _cache_lock:
        ring = _cache.get(key)
        if ring is None:
            ring = _cache[key] = AuditKeyring(Path(path), config.audit_key, config.audit_key_id)
    return ring
