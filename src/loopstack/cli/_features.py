"""`loopstack features ...`: apply definitions from a Python file, list and show them.

Other feature commands (``materialize``, ``get``) add themselves to ``app`` from
``loopstack.cli._features_online``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from loopstack.cli._project import PROJECT
from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

app = typer.Typer(
    no_args_is_help=True, help="Feature store: apply definitions, list and show feature views."
)


def definitions_in(path: Path) -> list[Any]:
    """Every Entity, FeatureView and OnDemandFeatureView defined at module level in ``path``."""
    import importlib.util
    import sys

    from loopstack.errors import Invalid, NotFound
    from loopstack.features import Entity, FeatureView, OnDemandFeatureView

    if not path.is_file():
        raise NotFound(f"no definitions file {str(path)!r}")
    if path.suffix != ".py":
        raise Invalid(
            f"expected a Python file (.py) of feature definitions; got {str(path)!r}", field="file"
        )
    name = f"loopstack_features_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise Invalid(f"cannot import {str(path)!r}", field="file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so udfs defined there can be found again by name
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        if type(exc).__module__.startswith("loopstack"):
            raise
        raise Invalid(
            f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}", field="file"
        ) from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    return [
        v
        for v in vars(module).values()
        if isinstance(v, Entity | FeatureView | OnDemandFeatureView)
    ]


@app.command("apply")
def apply(
    file: Path = typer.Argument(..., help="A Python file defining entities and views."),
    force: bool = typer.Option(
        False, "--force", help="Apply breaking changes too (recorded in the audit log)."
    ),
    no_check_source: bool = typer.Option(
        False,
        "--no-check-source",
        help="Do not check each view against its source (for data that does not exist yet).",
    ),
    project: str = PROJECT,
) -> None:
    """Register every Entity, FeatureView and OnDemandFeatureView defined in FILE.

    Each feature view is checked against its source first (readable, with the join keys,
    the timestamp field and every feature at a compatible type).
    """
    from loopstack.cli._output import console, fail
    from loopstack.features import FeatureStore

    objs = definitions_in(file)
    if not objs:
        fail(f"{file} defines no Entity, FeatureView or OnDemandFeatureView at module level")
    store = FeatureStore(project=project)
    out = console()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed below, as `warning:` lines
        results = store.apply(objs, force=force, check_source=not no_check_source)
    for r in results:
        kind = r.kind.replace("_", " ")
        if r.kind == "entity":
            state = "registered" if r.changed else "unchanged"
            out.print(f"{kind} [bold]{r.name}[/]: {state}")
        else:
            state = f"version {r.version}" + ("" if r.changed else " (unchanged)")
            out.print(f"{kind} [bold]{r.name}[/]: {state}")
        for reason in r.forced:
            out.print(f"  [yellow]forced:[/] {reason}")
        for note in r.warnings:
            out.print(f"  [yellow]warning:[/] {note}")


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="A feature view (or feature service) name."),
    force: bool = typer.Option(
        False, "--force", help="Delete even while models or services use it (audited)."
    ),
    project: str = PROJECT,
) -> None:
    """Delete a feature view (every version, and its online rows) or a feature service.

    Refused while a registered model version's training set used the view, or a feature
    service or on-demand view names it, unless --force.
    """
    from loopstack.cli._output import console
    from loopstack.features import FeatureStore

    d = FeatureStore(project=project).delete(name, force=force)
    versions = f"{d.versions} version{'s' if d.versions != 1 else ''}"
    console().print(f"deleted {d.kind.replace('_', ' ')} [bold]{d.name}[/] ({versions})")
    for reason in d.forced:
        console().print(f"  [yellow]forced:[/] {reason}")


def _features(d: dict[str, Any]) -> list[str]:
    return [f["name"] for f in d.get("schema", [])]


@app.command("list")
def list_views(
    project: str = PROJECT,
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Feature views with their current version, entities, features, TTL and owner."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list, show_id
    from loopstack.features import FeatureStore

    store = FeatureStore(project=project)
    cols = [
        Column("name", lambda r: r.name, priority=0),
        Column("version", lambda r: r.version, show_id, priority=1, justify="right"),
        Column("kind", lambda r: r.kind, priority=4),
        Column(
            "entities",
            lambda r: r.definition.get("join_keys", []),
            ", ".join,
            priority=2,
            abbreviate=True,
        ),
        Column(
            "features",
            lambda r: _features(r.definition),
            ", ".join,
            priority=3,
            abbreviate=True,
            max_width=40,
        ),
        Column(
            "ttl",
            lambda r: r.definition.get("ttl_seconds"),
            lambda t: "-" if t is None else f"{t:g}s",
            priority=5,
            justify="right",
        ),
        Column("owner", lambda r: r.owner, lambda o: o or "-", priority=6, abbreviate=True),
        Column("applied", lambda r: r.created_at, fmt_time, priority=7),
        Column("digest", lambda r: r.digest, lambda d: d[:12], priority=8, in_table=False),
        Column("definition", lambda r: r.definition, json.dumps, priority=9, in_table=False),
    ]
    render_list(
        store.registry.latest_versions(),
        cols,
        title="feature views",
        empty="No feature views",
        hint="define them in a file and run `loopstack features apply FILE`",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Feature view name."),
    version: int = typer.Option(None, "--version", help="A version (default: current)."),
    project: str = PROJECT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One feature view version: its definition, digest, owner and version history."""
    from loopstack.cli._output import console, fmt_time
    from loopstack.features import FeatureStore

    store = FeatureStore(project=project)
    v = store.feature_view_version(name, version)
    history = store.registry.versions(name)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "name": v.name,
                    "version": v.version,
                    "kind": v.kind,
                    "digest": v.digest,
                    "owner": v.owner,
                    "created_by": v.created_by,
                    "created_at": v.created_at,
                    "definition": v.definition,
                    "versions": [h.version for h in history],
                },
                indent=2,
            )
        )
        return
    out = console()
    d = v.definition
    out.print(f"[bold]{v.name}[/] version {v.version} of {len(history)} ({v.kind})")
    out.print(
        f"digest {v.digest[:16]}  owner {v.owner or '-'}  applied by {v.created_by} "
        f"at {fmt_time(v.created_at)}"
    )
    if d.get("description"):
        out.print(d["description"])
    if v.kind == "batch":
        ttl = d.get("ttl_seconds")
        out.print(
            f"entities: {', '.join(d.get('join_keys', []))}   timestamp: "
            f"{d.get('timestamp_field')}   ttl: {'-' if ttl is None else f'{ttl:g}s'}"
        )
        src = d.get("source", {})
        out.print(
            "source: "
            + ", ".join(f"{k}={val}" for k, val in src.items() if k != "kind")
            + f" ({src.get('kind')})"
        )
    else:
        udf = d.get("udf", {})
        out.print(
            f"udf: {udf.get('module')}:{udf.get('qualname')}   sources: "
            + ", ".join(s.get("name", "?") for s in d.get("sources", []))
        )
    out.print("features:")
    for f in d.get("schema", []):
        out.print(f"  {f['name']}: {f['dtype']}")
