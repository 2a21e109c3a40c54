"""`loopstack rollout ...`: a gated model version's way to the whole traffic of an
endpoint, watched by guardrails and rolled back on its own.

`start` takes the plan as options (`--step 0.05:600` weight:bake seconds, `--shadow
SECONDS`, `--guardrail "latency_p99_ms<250"`, `--breaches`, `--interval`, `--window`,
`--no-approval`, `--metrics-url`) or a JSON file (`--plan FILE`); `--evidence FILE`
goes with the approval request (a project whose policy approves gated versions at once
reads ``gates_passed`` there). `tick` moves every
rollout under way one step (`--every SECONDS` keeps ticking: a small controller);
`approve` approves the registry's request (it authorises the rollout; `production`
moves when the rollout promotes, never if it rolls back); `pause`, `resume`, `promote`
and `rollback` are the overrides (an ml-engineer's or admin's). Against a local
metadata store the commands act directly; with an http(s) LOOPSTACK_TRACKING_URI they
call the server's /api/v1/rollouts routes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from loopstack.loop import Rollout, RolloutPlan

app = typer.Typer(
    no_args_is_help=True,
    help="Rollouts: shadow and canary steps watched by guardrails, promote or roll back.",
)

ID = typer.Argument(..., help="The rollout's id (see `loopstack rollout list`).")
_RAIL = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


def _rollouts() -> Any:
    from loopstack.loop import rollouts

    return rollouts()


def _step(text: str) -> dict[str, float]:
    from loopstack.errors import Invalid

    weight, _, bake = text.partition(":")
    try:
        return {"weight": float(weight), "bake_s": float(bake) if bake else 60.0}
    except ValueError:
        raise Invalid(
            f"a --step is WEIGHT[:BAKE_SECONDS] (0.05:600); got {text!r} instead", field="step"
        ) from None


def _guardrail(text: str) -> dict[str, Any]:
    from loopstack.errors import Invalid

    found = _RAIL.match(text)
    if found is None:
        raise Invalid(
            f'a --guardrail is METRIC OP THRESHOLD ("latency_p99_ms<250", OP one of <, <=, '
            f">, >=); got {text!r} instead",
            field="guardrail",
        )
    return {"metric": found[1], "op": found[2], "threshold": float(found[3])}


def _plan(
    plan_file: Path | None,
    steps: list[str],
    shadow: float | None,
    guardrails: list[str],
    breaches: int,
    interval: float,
    window: float,
    approval: bool,
    metrics_url: str | None,
) -> RolloutPlan:
    import json

    from loopstack.errors import Invalid
    from loopstack.loop import RolloutPlan

    if plan_file is not None:
        try:
            return RolloutPlan.from_dict(json.loads(plan_file.read_text()))
        except json.JSONDecodeError as exc:
            raise Invalid(f"the plan file {plan_file} is not JSON: {exc}", field="plan") from exc
    return RolloutPlan.from_dict(
        {
            "steps": [_step(s) for s in steps],
            "shadow_s": shadow,
            "guardrails": [_guardrail(g) for g in guardrails],
            "breaches_to_rollback": breaches,
            "interval_s": interval,
            "window_s": window,
            "require_approval": approval,
            "metrics_url": metrics_url,
        }
    )


def _summary(r: Rollout) -> str:
    return (
        f"rollout {r.rollout_id}: {r.model_name}/{r.version} on {r.endpoint} is {r.status}"
        + (f" ({r.phase})" if r.status in ("paused", "canary") else "")
        + (f" — {r.reason}" if r.reason else "")
    )


@app.command("start")
def start(
    endpoint: str = typer.Argument(..., help="The endpoint (deployment) to roll out on."),
    model: str = typer.Argument(..., help="The registered model."),
    version: int = typer.Argument(..., help="The candidate version."),
    step: list[str] = typer.Option([], "--step", help="WEIGHT[:BAKE_SECONDS], repeatable."),
    shadow: float = typer.Option(None, "--shadow", help="A shadow phase first, in seconds."),
    guardrail: list[str] = typer.Option(
        [], "--guardrail", help='METRIC OP THRESHOLD ("error_rate<=0.02"), repeatable.'
    ),
    breaches: int = typer.Option(2, "--breaches", help="Breaches in a row that roll back."),
    interval: float = typer.Option(10.0, "--interval", help="Seconds between evaluations."),
    window: float = typer.Option(60.0, "--window", help="Seconds of predictions evaluated."),
    approval: bool = typer.Option(
        True, "--approval/--no-approval", help="Wait for the registry's approval first."
    ),
    metrics_url: str = typer.Option(
        None, "--metrics-url", help="A serving replica's /metrics (for error_rate)."
    ),
    plan_file: Path = typer.Option(None, "--plan", help="The whole plan as a JSON file."),
    evidence_file: Path = typer.Option(
        None, "--evidence", help="The approval request's evidence, a JSON object file."
    ),
    force: bool = typer.Option(
        False, "--force", help="Past failed or missing gates (an admin's; needs --reason)."
    ),
    reason: str = typer.Option("", "--reason", help="Why it is forced (audited)."),
) -> None:
    """Start rolling a model version out on an endpoint (it awaits its approval)."""
    import json

    from loopstack.cli._output import console
    from loopstack.errors import Invalid

    plan = _plan(
        plan_file, step, shadow, guardrail, breaches, interval, window, approval, metrics_url
    )
    evidence = None
    if evidence_file is not None:
        try:
            evidence = json.loads(evidence_file.read_text())
        except json.JSONDecodeError as exc:
            raise Invalid(f"the evidence file {evidence_file} is not JSON: {exc}") from exc
        if not isinstance(evidence, dict):
            raise Invalid(f"the evidence is a JSON object; got {type(evidence).__name__}")
    r = _rollouts().start(
        endpoint, model, version, plan, evidence=evidence, force=force, reason=reason
    )
    console().print(_summary(r))
    if r.status == "awaiting_approval":
        console().print(
            f"approve it with `loopstack rollout approve {r.rollout_id}` (another ml-engineer)"
        )


def _gates_line(gates: dict[str, Any] | None) -> str:
    """Which gate evaluation the rollout started on (or who forced it past them)."""
    if not gates:
        return "gates: none recorded when it started"
    names = ", ".join(gates.get("gates", [])) or "none"
    line = f"gates: evaluation {gates.get('evaluation_id') or 'none'} ({names})"
    if gates.get("forced_by"):
        line += f"; forced by {gates['forced_by']}: {gates.get('force_reason', '')}"
    return line + ("; passed" if gates.get("passed") else "; not passed")


@app.command("status")
def status(rollout_id: int = ID, as_json: bool = JSON) -> None:
    """One rollout: where it is, its last measurement, and its audit trail."""
    import json

    from loopstack.cli._output import console, fmt_time

    store = _rollouts()
    r = store.get(rollout_id)
    trail = store.events(rollout_id)
    if as_json:
        typer.echo(json.dumps({**r.to_dict(), "events": trail}, indent=2, default=str))
        return
    out = console()
    out.print(_summary(r))
    plan = r.plan
    steps = ", ".join(f"{s.weight * 100:g}% for {s.bake_s:g}s" for s in plan.steps) or "none"
    rails = ", ".join(str(g) for g in plan.guardrails) or "none"
    out.print(f"plan: shadow {plan.shadow_s or 0:g}s; steps {steps}")
    out.print(
        f"guardrails: {rails}; roll back after {plan.breaches_to_rollback} in a row, "
        f"every {plan.interval_s:g}s over {plan.window_s:g}s"
    )
    out.print(_gates_line(r.watch.get("gates")))
    last = r.watch.get("last") or {}
    if last:
        values = ", ".join(f"{k}={v:.4g}" for k, v in sorted(last.get("values", {}).items()))
        out.print(f"last measured: {values or 'nothing'}")
        for note in last.get("notes", []):
            out.print(f"  note: {note}")
    for e in trail:
        out.print(f"{fmt_time(e['ts'])}  {e['action']:<18} {e['actor']}")


@app.command("list")
def list_rollouts(
    endpoint: str = typer.Option(None, "--endpoint", help="Only this endpoint's."),
    active: bool = typer.Option(False, "--active", help="Only those under way."),
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """The project's rollouts, newest first."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list, show_id

    found = _rollouts().list(endpoint, active=active)
    cols = [
        Column("id", lambda r: r.rollout_id, show_id, priority=0, justify="right"),
        Column("endpoint", lambda r: r.endpoint, priority=1, abbreviate=True),
        Column("model", lambda r: f"{r.model_name}/{r.version}", priority=2, abbreviate=True),
        Column("status", lambda r: r.status, priority=3),
        Column("phase", lambda r: r.phase, priority=4),
        Column("updated", lambda r: r.updated_at, fmt_time, priority=5),
        Column("reason", lambda r: r.reason or "", priority=6, abbreviate=True, max_width=60),
    ]
    render_list(
        found,
        cols,
        title=f"rollouts ({len(found)})",
        empty="No rollouts",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("approve")
def approve(
    rollout_id: int = ID,
    comment: str = typer.Option("", "--comment", "-c", help="Why it may go."),
) -> None:
    """Approve the rollout's registry request: the rollout may go on; production moves
    when it promotes."""
    from loopstack.cli._output import console

    _rollouts().approve(rollout_id, comment=comment)
    console().print(
        f"rollout {rollout_id}: approved; the next tick starts it (production moves when "
        "it promotes)"
    )


def _override(verb: str, rollout_id: int) -> None:
    from loopstack.cli._output import console

    r = getattr(_rollouts(), verb)(rollout_id)
    console().print(_summary(r))


@app.command("pause")
def pause(rollout_id: int = ID) -> None:
    """Hold a rollout where it is (the traffic split stays)."""
    _override("pause", rollout_id)


@app.command("resume")
def resume(rollout_id: int = ID) -> None:
    """Go on with a paused rollout."""
    _override("resume", rollout_id)


@app.command("promote")
def promote(rollout_id: int = ID) -> None:
    """Promote now, whatever step it is on."""
    _override("force_promote", rollout_id)


@app.command("rollback")
def rollback(rollout_id: int = ID) -> None:
    """Roll back now: the champion alone answers again."""
    _override("force_rollback", rollout_id)


@app.command("tick")
def tick(
    every: float = typer.Option(
        None, "--every", help="Keep ticking, every SECONDS, until interrupted."
    ),
    count: int = typer.Option(None, "--count", help="With --every: stop after N ticks."),
) -> None:
    """Move every rollout under way one step (start, evaluate, advance, roll back)."""
    import time

    from loopstack.cli._output import console

    store, done = _rollouts(), 0
    while True:
        for e in store.tick():
            detail = e.detail.get("reason") or e.detail.get("weight") or ""
            console().print(f"rollout {e.rollout_id} on {e.endpoint}: {e.kind} {detail}".rstrip())
        done += 1
        if every is None or (count is not None and done >= count):
            return
        time.sleep(every)
