"""`loopstack monitor ...`: alert history, alert rules and an endpoint's monitoring report.

``alerts`` lists incidents (a firing and its resolution) from the alert history;
``rules`` lists the rules with their last evaluation, ``rules add`` / ``rules remove``
change them (audited); ``report ENDPOINT`` writes one self-contained HTML (or JSON)
report of a window. They act on the local metadata store (an http(s)
LOOPSTACK_TRACKING_URI is refused: the server has no monitoring routes yet).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from loopstack.monitoring import AlertStore
    from loopstack.store import Stores

app = typer.Typer(
    no_args_is_help=True,
    help="Monitoring: alert history, alert rules, an endpoint's report.",
)
rules_app = typer.Typer(
    invoke_without_command=True,
    help="Alert rules with their last evaluation; add or remove one.",
)
app.add_typer(rules_app, name="rules")


def _opened() -> tuple[Stores, str, int]:
    from loopstack.cli._stores import local_project

    return local_project("monitor", "monitoring")


def _alert_store() -> AlertStore:
    from loopstack.monitoring import AlertStore

    stores, actor, pid = _opened()
    return AlertStore(stores, actor=actor, project_id=pid)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


@app.command("alerts")
def alerts(
    state: str = typer.Option("all", "--state", help="firing, resolved or all."),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Only alerts of this endpoint (and rules without one)."
    ),
    limit: int = typer.Option(50, "--limit", help="The most recent incidents to show."),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Alert incidents, newest last: rule, severity, state, first and last seen."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list
    from loopstack.errors import Invalid
    from loopstack.monitoring import alert_incidents

    if state not in ("firing", "resolved", "all"):
        raise Invalid(f"--state must be firing, resolved or all; got {state!r}", field="state")
    if limit < 1:
        raise Invalid(f"--limit must be at least 1; got {limit}", field="limit")
    found = alert_incidents(_alert_store().history(limit=10000), endpoint=endpoint)
    if state != "all":
        found = [a for a in found if a["state"] == state]
    found = found[-limit:]
    cols = [
        Column("rule", lambda a: a["rule"], priority=0, abbreviate=True),
        Column("severity", lambda a: a["severity"], priority=2),
        Column("state", lambda a: a["state"], priority=1),
        Column("first_seen", lambda a: a["first_seen"], lambda v: fmt_time(_ms(v)), priority=3),
        Column("last_seen", lambda a: a["last_seen"], lambda v: fmt_time(_ms(v)), priority=4),
        Column("value", lambda a: a["value"], priority=6, justify="right"),
        Column("message", lambda a: a["message"], priority=5, abbreviate=True, max_width=50),
    ]
    render_list(
        found,
        cols,
        title=f"alerts ({len(found)})",
        empty="No alerts",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@rules_app.callback()
def rules(
    ctx: typer.Context,
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Every alert rule with its last evaluation: value, state, when."""
    if ctx.invoked_subcommand is not None:
        return
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list

    store = _alert_store()
    found = [(r, store.state(r.name)) for r in store.list_rules()]

    def condition(pair: Any) -> str:
        r = pair[0]
        return f"{r.metric} {r.comparison} {r.threshold:g}"

    cols = [
        Column("name", lambda p: p[0].name, priority=0, abbreviate=True),
        Column("condition", condition, priority=2, abbreviate=True, max_width=40),
        Column("severity", lambda p: p[0].severity, priority=5),
        Column("state", lambda p: "firing" if p[1].firing else "ok", priority=1),
        Column("last_value", lambda p: p[1].last_value, priority=3, justify="right"),
        Column(
            "evaluated",
            lambda p: p[1].last_evaluated,
            lambda v: fmt_time(_ms(v)),
            priority=4,
        ),
        Column("labels", lambda p: p[0].labels, _labels, priority=6, abbreviate=True),
    ]
    render_list(
        found, cols, title=f"alert rules ({len(found)})", empty="No alert rules", as_json=as_json
    )


def _labels(value: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"


def _parse_labels(values: list[str]) -> dict[str, str]:
    from loopstack.errors import Invalid

    out = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not eq or not key:
            raise Invalid(f"a --label is KEY=VALUE (endpoint=churn); got {value!r}", field="label")
        out[key] = val
    return out


@rules_app.command("add")
def rules_add(
    name: str = typer.Argument(..., help="The rule's name (replaces a rule of that name)."),
    metric: str = typer.Option(..., "--metric", help="The monitored metric, e.g. psi_max."),
    comparison: str = typer.Option(..., "--comparison", help="One of >, >=, <, <=."),
    threshold: float = typer.Option(..., "--threshold", help="The value that breaches."),
    severity: str = typer.Option("warning", "--severity", help="info, warning or critical."),
    category: str = typer.Option(
        "model_quality", "--category", help="infrastructure or model_quality."
    ),
    for_windows: int = typer.Option(1, "--for-windows", help="Breaching windows to fire."),
    resolve_windows: int = typer.Option(1, "--resolve-windows", help="Clean windows to resolve."),
    cooldown: float = typer.Option(0.0, "--cooldown", help="Seconds before it fires again."),
    label: list[str] = typer.Option([], "--label", help="KEY=VALUE, e.g. endpoint=churn."),
    description: str = typer.Option("", "--description", help="What the alert means."),
) -> None:
    """Create or replace an alert rule (audited)."""
    from loopstack.cli._output import console
    from loopstack.monitoring import AlertRule

    rule = AlertRule(
        name,
        metric,
        comparison,
        threshold,
        severity=severity,
        category=category,
        for_windows=for_windows,
        resolve_windows=resolve_windows,
        cooldown_s=cooldown,
        labels=_parse_labels(label),
        description=description,
    )
    _alert_store().save_rule(rule)
    console().print(
        f"saved rule {name}: {metric} {comparison} {rule.threshold:g} ({severity})",
        markup=False,
    )


@rules_app.command("remove")
def rules_remove(name: str = typer.Argument(..., help="The rule's name.")) -> None:
    """Delete an alert rule and its state (its alert history stays)."""
    from loopstack.cli._output import console

    _alert_store().delete_rule(name)
    console().print(f"removed rule {name}", markup=False)


@app.command("report")
def report(
    endpoint: str = typer.Argument(..., help="The endpoint (deployment) to report on."),
    window: str = typer.Option("7d", "--window", help="How far back: 30m, 36h, 7d."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="The file to write."),
    fmt: str = typer.Option("html", "--format", help="html or json."),
    reference: Path | None = typer.Option(
        None, "--reference", help="A Parquet file of reference inputs (training data)."
    ),
    model_version: str | None = typer.Option(
        None, "--model-version", help="NAME/VERSION: its training data is the reference."
    ),
    current: Path | None = typer.Option(
        None, "--current", help="A Parquet file to use instead of the logged inputs."
    ),
) -> None:
    """Write ENDPOINT's monitoring report of the last --window (self-contained HTML)."""
    from loopstack.cli._output import console
    from loopstack.errors import Invalid
    from loopstack.monitoring import build_report

    if fmt not in ("html", "json"):
        raise Invalid(f"--format must be html or json; got {fmt!r}", field="format")
    stores, _, pid = _opened()
    built = build_report(
        endpoint,
        window,
        reference=reference,
        model_version=model_version,
        current=current,
        stores=stores,
        project_id=pid,
    )
    built.write(out, format=fmt)
    drift = built.drift
    summary = (
        "no reference given: no drift section"
        if drift is None
        else f"{len(drift.drifted_columns)} of {len(drift.columns)} columns drifted"
    )
    console().print(
        f"wrote {out} ({fmt}): {len(built.alerts)} alert(s), "
        f"{sum(v['requests'] for v in built.volume):,} request(s); {summary}",
        markup=False,
    )


def _routes(values: list[str]) -> dict[str, list[str]]:
    from loopstack.errors import Invalid

    routes: dict[str, list[str]] = {}
    for value in values:
        category, sep, url = value.partition("=")
        if not sep or not category or not url:
            raise Invalid(
                f"--route must be CATEGORY=URL (model_quality=https://hooks.example/ml); "
                f"got {value!r}",
                field="route",
            )
        routes.setdefault(category, []).append(url)
    return routes


def _cycle_table(results: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title="monitor", title_justify="left")
    for name in ("endpoint", "requests", "drift", "accuracy", "estimated", "alerts"):
        table.add_column(name, justify="left" if name == "endpoint" else "right")
    for obs, events in results:
        m = obs.metrics()

        def num(key: str, m: dict[str, float] = m) -> str:
            return f"{m[key]:.3f}" if key in m else "-"

        fired = [e.rule.name for e in events if e.kind in ("fired", "resolved")]
        table.add_row(
            obs.endpoint,
            f"{obs.requests:,}",
            num("drift_share"),
            num("accuracy"),
            num("estimated_accuracy"),
            ", ".join(f"{e.kind} {e.rule.name}" for e in events if e.rule.name in fired) or "-",
        )
    return table


@app.command("run")
def run(
    endpoints: list[str] = typer.Argument(
        None, help="Endpoints to watch (default: every stored deployment)."
    ),
    window: str = typer.Option("1h", "--window", help="Each evaluation's window: 30m, 1h."),
    every: str = typer.Option("5m", "--every", help="Time between evaluations: 30s, 5m."),
    iterations: int | None = typer.Option(
        None, "--iterations", min=1, help="Stop after this many evaluations."
    ),
    once: bool = typer.Option(False, "--once", help="One evaluation, then exit."),
    route: list[str] = typer.Option(
        [], "--route", help="CATEGORY=URL: send that category's alerts there (repeatable)."
    ),
    labels: str | None = typer.Option(
        None, "--labels", help="A labels table read each time: SQLAlchemy URL or Parquet glob."
    ),
    labels_table: str | None = typer.Option(
        None, "--labels-table", help="The table of --labels (with a URL)."
    ),
    labels_ts: str = typer.Option(
        "ts", "--labels-ts", help="--labels' time column (rows after the last taken)."
    ),
) -> None:
    """Evaluate the alert rules on each endpoint's window, every --every, until stopped.

    With --labels, the new rows of a labels table (request_id, label, time) are taken
    into the feedback stream before each evaluation."""
    import time

    from loopstack.cli._output import console
    from loopstack.monitoring import AlertRouter, AlertStore
    from loopstack.monitoring._build_report import parse_window
    from loopstack.monitoring._monitor import monitor_once

    pause = parse_window(every)
    stores, actor, pid = _opened()
    router = AlertRouter(_routes(route)) if route else None
    store = AlertStore(stores, actor=actor, project_id=pid, router=router)
    limit = 1 if once else iterations
    done = 0
    while True:
        started = time.monotonic()
        if labels is not None:
            from loopstack.monitoring import ingest_labels
            from loopstack.store.events import EventLog

            taken = ingest_labels(
                labels,
                table=labels_table,
                ts_column=labels_ts,
                events=EventLog(stores, project_id=pid),
            )
            console().print(f"labels: {taken:,} new row(s) from {labels}", markup=False)
        results = monitor_once(store, endpoints or None, window=window, stores=stores)
        console().print(_cycle_table(results))
        done += 1
        if limit is not None and done >= limit:
            return
        time.sleep(max(0.0, pause - (time.monotonic() - started)))
