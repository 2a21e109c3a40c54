"""`loopstack loop ...`: the closed loop's controller, its triggers and what they did.

``run`` is the controller process (one active per database, by lease: a second one
waits until the first stops); ``status`` shows what fired, why and what it led to;
``triggers`` lists the triggers, ``triggers add`` / ``remove`` / ``enable`` /
``disable`` / ``fire`` change them (audited). With an http(s) LOOPSTACK_TRACKING_URI
``status`` and ``triggers`` go through the server's /api/v1/loop routes (which resolve a
new trigger's pipeline on the server's machine); ``run``, the controller, launches
pipelines on this machine against the metadata store, so it is refused through a server.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from loopstack.loop import RestTriggers, TriggerStore
    from loopstack.store import Stores

app = typer.Typer(
    no_args_is_help=True,
    help="The closed loop: the controller, its triggers, what fired and why.",
)
triggers_app = typer.Typer(
    invoke_without_command=True,
    help="The loop's triggers; add, remove, enable, disable or fire one.",
)
app.add_typer(triggers_app, name="triggers")


def _opened() -> tuple[Stores, str, int]:
    """The local stores for the controller; a server is refused, saying why."""
    from loopstack.cli._stores import local_project

    return local_project(
        "loop run",
        "loop",
        why=(
            "names a server, which runs no controller: `loop run` launches the triggers' "
            "pipelines on this machine and records them in the metadata store it holds a "
            "lease on. Run it where that store is reachable (unset LOOPSTACK_TRACKING_URI, "
            "set LOOPSTACK_DB_URL); loop status and loop triggers work through the server"
        ),
    )


def _store() -> TriggerStore | RestTriggers:
    """The project's triggers: through the server for an http(s) tracking URI."""
    from loopstack.loop import triggers

    return triggers()


@app.command("run")
def run(
    interval: float = typer.Option(10.0, "--interval", help="Seconds between steps."),
    iterations: int | None = typer.Option(
        None, "--iterations", min=1, help="Stop after this many steps."
    ),
    once: bool = typer.Option(False, "--once", help="One step, then exit."),
    lease_ttl: float = typer.Option(
        30.0, "--lease-ttl", help="Seconds the controller's lease lasts unrenewed."
    ),
) -> None:
    """The controller: evaluate the triggers every --interval and launch what fired.

    One controller acts per database, for the triggers of every project; another
    started beside it waits (standby) and takes over when the first stops or dies.
    Ctrl-C stops it."""
    import threading

    from loopstack.cli._output import console
    from loopstack.errors import Invalid
    from loopstack.loop import Controller, StepReport

    for name, value in (("--interval", interval), ("--lease-ttl", lease_ttl)):
        if not value > 0:
            raise Invalid(f"{name} must be a positive number of seconds; got {value}")
    stores, actor, _ = _opened()
    # one controller per database acts for every project's triggers
    controller = Controller(stores, interval_s=interval, lease_ttl_s=lease_ttl, actor=actor)
    out = console()
    out.print(f"controller {controller.holder}: every {interval:g}s", markup=False)
    standby = [False]

    def show(report: StepReport) -> None:
        if not report.active and not standby[0]:
            out.print("standby: another controller holds the lease", markup=False)
        if report.active and standby[0]:
            out.print("active: this controller holds the lease", markup=False)
        standby[0] = not report.active
        for e in report.events:
            style = {
                "failed": "red",
                "error": "red",
                "stopped": "yellow",
                "held": "yellow",
                "done": "green",
            }
            colour = style.get(e.kind, "cyan")
            fid = f"#{e.firing_id} " if e.firing_id is not None else ""
            out.print(f"[{colour}]{e.kind:<8}[/] {fid}{e.trigger}: ", end="")
            out.print(e.message, markup=False)

    import signal

    stop = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    # SIGTERM (a service manager stopping it): finish the step, give the lease up
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if main else None
    try:
        controller.run(iterations=1 if once else iterations, stop=stop, on_step=show)
    except KeyboardInterrupt:
        stop.set()
        out.print("stopped", markup=False)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


@app.command("status")
def status(
    limit: int = typer.Option(20, "--limit", help="The most recent firings to show."),
    trigger: str | None = typer.Option(None, "--trigger", help="Only this trigger's firings."),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """What fired, why, and what it led to (newest first)."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list
    from loopstack.errors import Invalid

    if limit < 1:
        raise Invalid(f"--limit must be at least 1; got {limit}", field="limit")
    found = _store().firings(trigger, limit)

    def led_to(f: Any) -> str:
        o = f.outcome
        return str(o.get("gate") or o.get("error") or o.get("pipeline_status") or "-")

    cols = [
        Column("id", lambda f: f.firing_id, str, priority=0, justify="right"),
        Column("trigger", lambda f: f.trigger, priority=0, abbreviate=True, max_width=20),
        Column("fired_at", lambda f: f.fired_at, fmt_time, priority=2),
        Column("status", lambda f: f.status, priority=1),
        Column("reason", lambda f: f.reason, priority=3, abbreviate=True, max_width=50),
        Column("pipeline_run", lambda f: f.pipeline_run_uuid, priority=5),
        Column("outcome", led_to, priority=4, abbreviate=True, max_width=40),
    ]
    render_list(
        found,
        cols,
        title=f"firings ({len(found)})",
        empty="No firings",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )
    if not (as_json or as_csv):
        _gate_stops(found)
        _held_back(trigger)


def _held_back(name: str | None) -> None:
    """Under the table: each trigger whose last evaluation was over its threshold but held
    back by its cooldown (it did not fire), and when."""
    from loopstack.cli._output import console, fmt_time

    out = console()
    for stored in _store().list():
        why = stored.state.get("held_reason")
        if why and name in (None, stored.name):
            at = fmt_time(int(float(stored.state.get("held_at") or 0) * 1000))
            out.print(f"{stored.name}: {why} (held back at {at})", markup=False, soft_wrap=True)


def _gate_stops(found: list[Any]) -> None:
    """Under the table, in full: why each firing that stopped at its gates stopped (the
    table's outcome column is cut to fit), and the command that shows the evidence."""
    import re

    from rich.text import Text

    from loopstack.cli._output import console

    out = console()
    shown, where = 0, None
    for f in found:
        why = f.outcome.get("gate") or f.outcome.get("error")
        if f.status != "stopped" or not why:
            continue
        out.print(Text.assemble((f"#{f.firing_id} stopped at its gates", "yellow"), f": {why}"))
        shown += 1
        named = re.search(r"models:/([^/\s]+)/(\d+)|model '([^']+)' version (\d+)", str(why))
        if named and where is None:  # the newest stopped firing's version, as an example
            where = " ".join(g for g in named.groups() if g)
    if shown:
        hint = f"each gate's evidence: loopstack models gates {where or 'MODEL VERSION'}"
        out.print(hint, markup=False)


@triggers_app.callback()
def triggers(
    ctx: typer.Context,
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Every trigger: kind, what it watches, the pipeline it starts, on or off."""
    if ctx.invoked_subcommand is not None:
        return
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list
    from loopstack.loop._triggers import describe

    found = _store().list()
    cols = [
        Column("name", lambda t: t.name, priority=0, abbreviate=True, max_width=24),
        Column("kind", lambda t: t.trigger.kind, priority=1),
        Column("watches", lambda t: describe(t.trigger), priority=2, abbreviate=True, max_width=40),
        Column("enabled", lambda t: t.enabled, lambda v: "yes" if v else "no", priority=3),
        Column("pipeline", lambda t: t.trigger.pipeline, priority=4, abbreviate=True, max_width=40),
        Column("created_at", lambda t: t.created_at, fmt_time, priority=6),
        Column("created_by", lambda t: t.created_by, priority=7, abbreviate=True),
        Column("spec", lambda t: dict(t.trigger.spec), json.dumps, in_table=False),
        Column("params", lambda t: dict(t.trigger.params), json.dumps, in_table=False),
        Column("state", lambda t: t.state, json.dumps, in_table=False),
    ]
    render_list(
        found,
        cols,
        title=f"triggers ({len(found)})",
        empty="No triggers",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


def _params(values: list[str]) -> dict[str, Any]:
    from loopstack.errors import Invalid

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise Invalid(f"--param must be KEY=VALUE; got {item!r}", field="param")
        try:
            out[key] = json.loads(raw)  # numbers, booleans, lists stay typed
        except ValueError:
            out[key] = raw
    return out


@triggers_app.command("add")
def add(
    name: str = typer.Argument(..., help="The trigger's name."),
    kind: str = typer.Option(
        ..., "--kind", help="cron, dataset, drift, performance, kpi, alert or manual."
    ),
    pipeline: str = typer.Option(
        ..., "--pipeline", help="The pipeline's entrypoint: pkg.module:fn or file.py:fn."
    ),
    spec: str | None = typer.Option(None, "--spec", help="The kind's spec as a JSON object."),
    schedule: str | None = typer.Option(None, "--schedule", help="cron: '*/5 * * * *'."),
    dataset: str | None = typer.Option(None, "--dataset", help="dataset: its name."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="drift/performance/kpi."),
    metric: str | None = typer.Option(None, "--metric", help="drift/performance: the metric."),
    above: float | None = typer.Option(None, "--above", help="drift: fire above this."),
    below: float | None = typer.Option(None, "--below", help="performance/kpi: fire below."),
    window: str | None = typer.Option(None, "--window", help="The evaluation window: 1h."),
    cooldown: str | None = typer.Option(
        None,
        "--cooldown",
        help="drift/performance/kpi: after a firing, no other for this long (1h), nor while "
        "it or a rollout on the endpoint is under way.",
    ),
    kpi: str | None = typer.Option(None, "--kpi", help="kpi: the KPI's name."),
    rule: str | None = typer.Option(None, "--rule", help="alert: the alert rule's name."),
    param: list[str] = typer.Option([], "--param", help="KEY=VALUE for the pipeline."),
) -> None:
    """Add a trigger; refused when its pipeline does not resolve."""
    from loopstack.cli._output import console
    from loopstack.errors import Invalid
    from loopstack.loop import Trigger
    from loopstack.loop._triggers import describe

    given: dict[str, Any] = {}
    if spec is not None:
        try:
            given = json.loads(spec)
        except ValueError as exc:
            raise Invalid(f"--spec must be a JSON object; got {spec!r} ({exc})") from exc
        if not isinstance(given, dict):
            raise Invalid(f"--spec must be a JSON object; got {spec!r}", field="spec")
    options = {
        "schedule": schedule,
        "dataset": dataset,
        "endpoint": endpoint,
        "metric": metric,
        "above": above,
        "below": below,
        "window": window,
        "cooldown": cooldown,
        "kpi": kpi,
        "rule": rule,
    }
    given.update({k: v for k, v in options.items() if v is not None})
    stored = _store().add(Trigger(name, kind, pipeline, _params(param), given))
    console().print(
        f"added trigger {stored.name!r} ({describe(stored.trigger)}) -> {stored.trigger.pipeline}",
        markup=False,
    )


@triggers_app.command("remove")
def remove(name: str = typer.Argument(..., help="The trigger to delete.")) -> None:
    """Delete a trigger and its firings (the audit log keeps them)."""
    from loopstack.cli._output import console

    _store().remove(name)
    console().print(f"removed trigger {name!r}", markup=False)


@triggers_app.command("enable")
def enable(name: str = typer.Argument(..., help="The trigger to turn on.")) -> None:
    """Turn a trigger on."""
    from loopstack.cli._output import console

    _store().enable(name)
    console().print(f"enabled trigger {name!r}", markup=False)


@triggers_app.command("disable")
def disable(name: str = typer.Argument(..., help="The trigger to turn off.")) -> None:
    """Turn a trigger off: the controller stops evaluating it."""
    from loopstack.cli._output import console

    _store().disable(name)
    console().print(f"disabled trigger {name!r}", markup=False)


@triggers_app.command("fire")
def fire(
    name: str = typer.Argument(..., help="The trigger to fire."),
    reason: str = typer.Option("", "--reason", help="Why (shown by loop status)."),
) -> None:
    """Fire a trigger now; the running controller launches its pipeline."""
    from loopstack.cli._output import console

    firing_id = _store().fire_manual(name, reason)
    console().print(f"fired trigger {name!r}: firing #{firing_id} is pending", markup=False)
