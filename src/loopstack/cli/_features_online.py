"""`loopstack features materialize | materialize-incremental | get`: the online side.

The commands hang on the `features` group (``loopstack.cli._features.app``).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from loopstack.cli._project import PROJECT

__all__ = ["parse_entity", "register"]


def _store(project: str | None) -> Any:
    from loopstack.features import FeatureStore

    return FeatureStore(project=project)


def _views(views: str | None) -> list[str] | None:
    if not views:
        return None
    return [v.strip() for v in views.split(",") if v.strip()]


def _scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_entity(text: str) -> dict[str, Any]:
    """``"driver_id=1001"`` or ``"a=1,b=x"`` -> ``{"driver_id": 1001}`` (numbers parsed)."""
    from loopstack.errors import Invalid

    row: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise Invalid(
                f"--entity takes key=value (or k1=v1,k2=v2); got {text!r} instead", field="entity"
            )
        row[key.strip()] = _scalar(value.strip())
    return row


def _print_materialization(result: Any) -> None:
    """The per-view table (failures with their error); then exit 1 naming the failed views."""
    from rich.table import Table

    from loopstack.cli._output import console, fail

    failed = [v for v in result.views if v.error]
    table = Table(title="materialized", title_justify="left")
    columns = ["view", "version", "start", "end", "rows read", "rows written", "seconds"]
    for col in [*columns, *(["error"] if failed else [])]:
        table.add_column(col, overflow="fold")
    for v in result.views:
        table.add_row(
            v.view,
            str(v.version),
            v.start.isoformat() if v.start else "-",
            v.end.isoformat(),
            str(v.rows_read),
            "-" if v.error else str(v.rows_written),
            f"{v.seconds:.2f}",
            *([v.error or "-"] if failed else []),
        )
    if not result.views:
        console().print("nothing to materialize")
    else:
        console().print(table)
    if failed:
        try:
            result.raise_for_errors()
        except Exception as exc:
            fail(str(exc))


def materialize(
    start: str = typer.Argument(..., help="Start (exclusive), ISO-8601, e.g. 2024-01-01."),
    end: str = typer.Argument(..., help="End (inclusive), ISO-8601."),
    views: str | None = typer.Option(
        None, "--views", help="Comma-separated view names (default: every online view)."
    ),
    project: str | None = PROJECT,
) -> None:
    """Write the newest row per entity with event time in (START, END] to the online store.

    Each view is reported; a view that fails is named (exit 1) and the others are written.
    """
    store = _store(project)
    _print_materialization(store.materialize(start, end, _views(views), raise_on_error=False))


def materialize_incremental(
    end: str | None = typer.Argument(None, help="End (inclusive), ISO-8601; default now."),
    views: str | None = typer.Option(None, "--views", help="Comma-separated view names."),
    project: str | None = PROJECT,
) -> None:
    """Materialize each view from the end of its last materialization up to END."""
    store = _store(project)
    _print_materialization(store.materialize_incremental(end, _views(views), raise_on_error=False))


def get(
    features: list[str] = typer.Argument(..., help="Features as VIEW:FEATURE (or VIEW:*)."),
    entity: list[str] = typer.Option(
        ...,
        "--entity",
        "-e",
        help="An entity row as key=value (k1=v1,k2=v2 for several keys); repeat.",
    ),
    full_names: bool = typer.Option(
        False, "--full-feature-names", help="Name columns view__feature."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (rows as objects)."),
    project: str | None = PROJECT,
) -> None:
    """Read online feature values (with event times and staleness) for entities."""
    from rich.table import Table

    from loopstack.cli._output import console

    rows = [parse_entity(e) for e in entity]
    result = _store(project).get_online_features(rows, features, full_feature_names=full_names)
    data = result.to_dict()
    n = len(rows)
    records = [{k: v[i] for k, v in data.items()} for i in range(n)]
    if as_json:
        typer.echo(json.dumps(records, default=str, indent=2))
        return
    table = Table(title_justify="left")
    cols = list(result.entities) + list(result.values)
    for c in [*cols, "event time", "stale"]:
        table.add_column(c, overflow="fold")
    for rec in records:
        stamps = [rec[f"{c}__event_timestamp"] for c in result.values]
        stale = any(rec[f"{c}__stale"] for c in result.values)
        newest = max((s for s in stamps if s is not None), default=None)
        table.add_row(
            *(str(rec[c]) if rec[c] is not None else "-" for c in cols),
            newest.isoformat() if newest else "-",
            "yes" if stale else "no",
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    """Add the online commands to a `features` command group."""
    app.command("materialize")(materialize)
    app.command("materialize-incremental")(materialize_incremental)
    app.command("get")(get)


_features_app: typer.Typer | None
try:  # the `features` group is defined by loopstack.cli._features
    from loopstack.cli._features import app as _features_app
except ImportError:  # pragma: no cover - a tree without the group yet
    _features_app = None
if _features_app is not None:
    register(_features_app)
