"""Settings read from the environment (and, where present, ``loopstack.toml``).

Every backend is chosen by a URL; the defaults are embedded and live under
``LOOPSTACK_HOME`` (``./.loopstack``), so loopstack works with zero setup.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings", "chosen_project", "set_project", "settings"]

_TRUE = {"1", "true", "on", "yes"}
MIB = 1024 * 1024
#: the project chosen by ``set_project`` in this process (wins over LOOPSTACK_PROJECT)
_project_override: str | None = None


def _toml_settings(home: Path) -> dict[str, str]:
    for candidate in (Path("loopstack.toml"), home / "loopstack.toml"):
        if candidate.is_file():
            with candidate.open("rb") as fh:
                data = tomllib.load(fh)
            section = data.get("loopstack", data)
            return {str(k).lower(): str(v) for k, v in section.items()}
    return {}


def _whole(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        from loopstack.errors import Invalid

        raise Invalid(
            f"LOOPSTACK_{name.upper()} must be a whole number >= 0; got {raw!r}", field=name
        )
    return value


@dataclass(frozen=True)
class Settings:
    """A snapshot of loopstack's configuration."""

    home: Path
    db_url: str
    artifacts_url: str
    tracking_uri: str | None
    token: str | None
    auth: bool
    actor: str
    #: the project to act in (``LOOPSTACK_PROJECT``); ``None`` is the ``default`` project
    project: str | None = None
    #: seconds a server request waits for the metadata store's write lock before it
    #: answers 503 with Retry-After (``LOOPSTACK_WRITE_WAIT_S``; well inside a client's
    #: timeout: loopstack's HttpClient waits 60 s, mlflow's 120 s)
    write_wait_s: float = 5.0
    #: the file of audit keys (``kid:hexsecret`` lines, the last one active); default
    #: ``<home>/audit.key``, made on the first audited write. For real protection keep
    #: it where the database's administrators cannot read it.
    audit_key_file: Path | None = None
    #: an audit key given directly (``LOOPSTACK_AUDIT_KEY``, hex or text), active over
    #: the file's, under the id ``audit_key_id`` (``LOOPSTACK_AUDIT_KEY_ID``)
    audit_key: str | None = None
    audit_key_id: str | None = None
    #: where ``loopstack audit anchor`` appends signed chain heads (a path or fsspec URL)
    audit_anchor_path: str | None = None
    #: with N > 0, a writer appends an anchor (to ``audit_anchor_path``) after each audit
    #: event whose seq is a multiple of N (``LOOPSTACK_AUDIT_ANCHOR_EVERY``; 0: off)
    audit_anchor_every: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    #: the largest request body the server reads (``LOOPSTACK_MAX_BODY_MB``); 0: no limit
    max_body_bytes: int = 16 * MIB
    #: the largest upload it streams to disk: artifacts, datasets (``LOOPSTACK_MAX_UPLOAD_MB``)
    max_upload_bytes: int = 10 * 1024 * MIB
    #: ``loopstack serve`` asks for a token with read access to the served project on
    #: every route but health and metrics (``LOOPSTACK_SERVING_AUTH``; ``--auth``)
    serving_auth: bool = False
    #: requests per second per caller a serving worker lets through; 0: no limit
    #: (``LOOPSTACK_SERVING_RATE_LIMIT``; ``--rate-limit``)
    serving_rate_limit: float = 0.0
    #: the burst above that rate (``LOOPSTACK_SERVING_RATE_BURST``; 0: one second's worth)
    serving_rate_burst: float = 0.0
    #: pipeline steps one project runs at once, across processes (leases
    #: ``steps:<project>:<i>``; ``LOOPSTACK_PIPELINE_MAX_CONCURRENT_STEPS``)
    pipeline_max_concurrent_steps: int = 4

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("LOOPSTACK_HOME", ".loopstack")).expanduser().resolve()
        toml = _toml_settings(home)

        def get(name: str, default: str | None = None) -> str | None:
            return os.environ.get(f"LOOPSTACK_{name.upper()}", toml.get(name, default))

        db_url = get("db_url") or f"sqlite:///{home / 'loopstack.db'}"
        artifacts_url = get("artifacts_url") or str(home / "artifacts")
        return cls(
            home=home,
            db_url=db_url,
            artifacts_url=artifacts_url,
            tracking_uri=get("tracking_uri") or None,
            token=get("token") or None,
            auth=(get("auth", "off") or "off").lower() in _TRUE,
            actor=get("user") or os.environ.get("USER") or "local",
            project=_project_override or get("project") or None,
            write_wait_s=_positive_seconds("write_wait_s", get("write_wait_s", "5")),
            max_body_bytes=_mebibytes("max_body_mb", get("max_body_mb"), 16),
            max_upload_bytes=_mebibytes("max_upload_mb", get("max_upload_mb"), 10 * 1024),
            audit_key_file=Path(get("audit_key_file") or home / "audit.key").expanduser(),
            audit_key=get("audit_key") or None,
            audit_key_id=get("audit_key_id") or None,
            audit_anchor_path=get("audit_anchor_path") or str(home / "audit-anchors.jsonl"),
            audit_anchor_every=_whole(get("audit_anchor_every") or "0", "audit_anchor_every"),
            serving_auth=(get("serving_auth", "off") or "off").lower() in _TRUE,
            serving_rate_limit=_rate("serving_rate_limit", get("serving_rate_limit")),
            serving_rate_burst=_rate("serving_rate_burst", get("serving_rate_burst")),
            pipeline_max_concurrent_steps=_at_least_one(
                "pipeline_max_concurrent_steps", get("pipeline_max_concurrent_steps") or "4"
            ),
        )


def _at_least_one(name: str, raw: str) -> int:
    value = _whole(raw, name)
    if value < 1:
        from loopstack.errors import Invalid

        raise Invalid(f"LOOPSTACK_{name.upper()} must be a whole number >= 1; got {raw!r}")
    return value


def _positive_seconds(name: str, raw: str | None) -> float:
    try:
        value = float(raw or "")
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        from loopstack.errors import Invalid

        raise Invalid(
            f"LOOPSTACK_{name.upper()} must be a positive number of seconds; got {raw!r}",
            field=name,
        )
    return value


def _non_negative(name: str, text: str | None, what: str) -> float | None:
    """A setting that is a number >= 0 (``what`` says what it means); None when unset."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        from loopstack.errors import Invalid

        raise Invalid(
            f"LOOPSTACK_{name.upper()} must be {what}; got {text[:40]!r}",
            field=name,
        )
    return value


def _rate(name: str, text: str | None) -> float:
    """A rate setting (requests per second; unset: 0, off)."""
    return _non_negative(name, text, "a number >= 0 (0: off)") or 0.0


def _mebibytes(name: str, text: str | None, default: float) -> int:
    """A size setting given in MiB (a decimal is fine), as bytes; 0 means no limit."""
    value = _non_negative(name, text, "a size in MiB (a number >= 0, 0 for no limit)")
    return int((default if value is None else value) * MIB)


def settings() -> Settings:
    """Read the configuration now (the environment may change between calls, e.g. in tests)."""
    return Settings.from_env()


def set_project(name: str | None) -> None:
    """Act in project ``name`` from now on in this process (``None``: back to
    ``LOOPSTACK_PROJECT``, else the ``default`` project).

    >>> ls.set_project("fraud")
    """
    global _project_override
    if name is not None and (not isinstance(name, str) or not name.strip()):
        from loopstack.errors import Invalid

        raise Invalid(f"a project name must be a non-empty string; got {name!r}", field="project")
    _project_override = name.strip() if name else None


def chosen_project() -> str | None:
    """The name ``set_project`` chose in this process (``None``: none chosen)."""
    return _project_override
