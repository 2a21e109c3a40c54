"""`loopstack doctor`: configuration, versions, and whether every configured backend answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import typer

#: distributions worth naming in a bug report; optional ones say "not installed"
PACKAGES = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "uvicorn",
    "pydantic",
    "pyarrow",
    "pandas",
    "numpy",
    "fsspec",
    "httpx",
    "typer",
    "rich",
    "psycopg",
    "redis",
    "ray",
    "mlflow",
)
#: a backend that does not answer within this long is reported unreachable
CHECK_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Check:
    backend: str
    target: str
    ok: bool
    detail: str


def hide_password(url: str) -> str:
    """``scheme://user:***@host/...``; URLs without a password come back unchanged."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        host = netloc[1] if len(netloc) == 2 else ""
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return url


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    return line if len(line) <= 240 else line[:239] + "…"


def _timed(backend: str, target: str, probe: Callable[[], str]) -> Check:
    """Run ``probe`` in a daemon thread, so a backend that never answers cannot hang doctor."""
    import threading

    result: list[Check] = []

    def run() -> None:
        start = time.perf_counter()
        try:
            detail = probe()
        except BaseException as exc:  # noqa: BLE001 - any failure means "unreachable"; say why
            result.append(Check(backend, target, False, _first_line(exc)))
            return
        ms = (time.perf_counter() - start) * 1000
        result.append(Check(backend, target, True, f"{detail} ({ms:.0f} ms)"))

    thread = threading.Thread(target=run, name=f"doctor-{backend}", daemon=True)
    thread.start()
    thread.join(CHECK_TIMEOUT_S)
    if not result:
        return Check(backend, target, False, f"no answer within {CHECK_TIMEOUT_S:.0f}s")
    return result[0]


def _check_database(url: str) -> str:
    from loopstack.store import audit
    from loopstack.store.metadata import open_database

    db = open_database(url)  # connects and brings the schema to head
    return f"{db.dialect}, schema at head, {audit.head_seq(db)} audit events"


def _check_artifacts(url: str) -> str:
    import uuid

    from loopstack.store.artifacts import FsspecBlobStore, LocalBlobStore, open_blob_store

    blobs = open_blob_store(url)
    probe = f"loopstack doctor probe {uuid.uuid4().hex}".encode()
    sha256, _ = blobs.put_bytes(probe)
    try:
        back = blobs.read_bytes(sha256)  # verified against its sha256 on the way
        if back != probe:
            raise RuntimeError("the probe blob read back differs from what was written")
    finally:
        # Blobs are immutable and BlobStore has no delete; remove the probe by hand so doctor
        # leaves nothing behind.
        try:
            if isinstance(blobs, LocalBlobStore):
                blobs._path(sha256).unlink(missing_ok=True)
            elif isinstance(blobs, FsspecBlobStore):
                blobs.fs.rm(blobs._path(sha256))
        except Exception:  # noqa: BLE001,S110 - an orphan probe blob is harmless
            pass
    return "wrote, read back and verified a probe blob"


def _check_server(base: str, token: str | None) -> str:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.get(f"{base}/health", headers=headers, timeout=5)
    if resp.status_code != 200:
        raise RuntimeError(f"GET /health answered HTTP {resp.status_code}")
    return f"GET /health ok, server version {resp.json().get('version', '?')}"


def _check_redis(url: str) -> str:
    try:
        import redis
    except ImportError:
        raise RuntimeError(
            "the redis package is not installed (pip install 'loopstack[redis]')"
        ) from None
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    finally:
        client.close()
    return f"PING ok, redis {version}"


#: (what it enables, the packages it needs, the extra that installs them)
CAPABILITIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("scikit-learn models", ("sklearn", "joblib"), "sklearn"),
    ("XGBoost models", ("xgboost",), "xgboost"),
    ("LightGBM models", ("lightgbm",), "lightgbm"),
    ("PyTorch models", ("torch",), "torch"),
    ("ONNX export and runtime", ("onnx", "onnxruntime", "skl2onnx"), "onnx"),
    ("custom Python models", ("cloudpickle",), "pyfunc"),
    ("PostgreSQL metadata DB", ("psycopg",), "postgres"),
    ("Redis online store", ("redis",), "redis"),
    ("Ray executor", ("ray",), "ray"),
)


def _capabilities() -> list[tuple[bool, str, str]]:
    """Each optional capability: installed?, what it is, what is missing or its versions.

    Found without importing (importing torch alone takes seconds).
    """
    from importlib import metadata
    from importlib.util import find_spec

    dist = {"sklearn": "scikit-learn"}
    rows = []
    for what, modules, extra in CAPABILITIES:
        missing = [m for m in modules if find_spec(m) is None]
        if missing:
            names = ", ".join(dist.get(m, m) for m in missing)
            rows.append((False, what, f"missing {names}: pip install 'loopstack[{extra}]'"))
            continue
        versions = []
        for m in modules:
            try:
                versions.append(f"{dist.get(m, m)} {metadata.version(dist.get(m, m))}")
            except metadata.PackageNotFoundError:
                versions.append(dist.get(m, m))
        rows.append((True, what, ", ".join(versions)))
    return rows


def _check_online(url: str) -> str:
    from loopstack.features.online import open_online_store

    store = open_online_store(url)
    try:
        views = store.views()
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    return f"{len(views)} materialized view(s)"


def _versions() -> list[tuple[str, str]]:
    import platform
    from importlib import metadata

    from loopstack import __version__

    rows = [
        ("loopstack", __version__),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
    ]
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


def doctor() -> None:
    """Show the configuration and versions, and check every configured backend answers.

    Exits 1 if any configured backend is unreachable.
    """
    import os

    from rich.markup import escape
    from rich.table import Table

    from loopstack.cli._output import console
    from loopstack.cli._stores import local_config, server_url
    from loopstack.config import settings

    config = local_config(settings())
    base = server_url(config)
    redis_url = os.environ.get("LOOPSTACK_REDIS_URL") or config.extra.get("redis_url")
    out = console()

    try:
        from sqlalchemy.engine import make_url

        safe_db = make_url(config.db_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by the check below
        safe_db = hide_password(config.db_url)
    cfg = Table(title="configuration", title_justify="left")
    cfg.add_column("setting")
    cfg.add_column("value", overflow="fold")
    cfg.add_row("LOOPSTACK_HOME", str(config.home))
    cfg.add_row("metadata DB", safe_db)
    cfg.add_row("artifacts", hide_password(config.artifacts_url))
    cfg.add_row(
        "tracking URI",
        hide_password(base) if base else "- (clients write to the metadata DB directly)",
    )
    cfg.add_row("redis", hide_password(redis_url) if redis_url else "- (not configured)")
    cfg.add_row("auth", "on" if config.auth else "off")
    cfg.add_row("token", "set" if config.token else "not set")
    cfg.add_row("actor", config.actor)
    out.print(cfg)

    ver = Table(title="versions", title_justify="left")
    ver.add_column("package")
    ver.add_column("version")
    for name, version in _versions():
        ver.add_row(name, version)
    out.print(ver)

    checks = [
        _timed("metadata DB", safe_db, lambda: _check_database(config.db_url)),
        _timed(
            "artifact store",
            hide_password(config.artifacts_url),
            lambda: _check_artifacts(config.artifacts_url),
        ),
    ]
    if base:
        checks.append(_timed("tracking server", base, lambda: _check_server(base, config.token)))
    if redis_url:
        checks.append(_timed("redis", hide_password(redis_url), lambda: _check_redis(redis_url)))
    online_url = os.environ.get("LOOPSTACK_ONLINE_URL") or f"sqlite:///{config.home / 'online.db'}"
    checks.append(
        _timed("online store", hide_password(online_url), lambda: _check_online(online_url))
    )

    table = Table(title="backends", title_justify="left")
    table.add_column("", width=1)
    table.add_column("backend")
    table.add_column("target", overflow="fold")
    table.add_column("detail", overflow="fold")
    for c in checks:
        table.add_row("[green]✓[/]" if c.ok else "[red]✗[/]", c.backend, c.target, c.detail)
    out.print(table)

    extras = Table(title="model flavors and extras", title_justify="left")
    extras.add_column("", width=1)
    extras.add_column("capability")
    extras.add_column("installed, or how to get it", overflow="fold")
    for ok, what, detail in _capabilities():
        extras.add_row("[green]✓[/]" if ok else "[yellow]-[/]", what, escape(detail))
    out.print(extras)
    failed = [c.backend for c in checks if not c.ok]
    if failed:
        out.print(f"[red]unreachable:[/] {', '.join(failed)}")
        raise typer.Exit(1)
    out.print("[green]all configured backends answer[/]")
