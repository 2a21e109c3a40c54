"""`loopstack deploy ...`: endpoints' stored deployments and their rollout policies.

Models are named MODEL@ALIAS (churn@champion) or MODEL/VERSION (churn/3). Against a
local metadata store the commands change the deployments directly; with an http(s)
LOOPSTACK_TRACKING_URI they call the server's /api/v1/deployments routes (with
LOOPSTACK_TOKEN, in the project given by --project / LOOPSTACK_PROJECT). Every change
makes a new revision, audited with who made it; `history` lists them all and
`rollback` restores one exactly. `enrich` makes an endpoint take entity keys and read
its models' features from the online store (`--mode`, `--default FEATURE=VALUE`,
`--config FILE`; `--off` stops).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from loopstack.serving import Arm, Deployment, DeploymentStore

app = typer.Typer(
    no_args_is_help=True,
    help="Deployments: endpoints serving model versions, and their rollout policies.",
)

NAME = typer.Argument(..., help="The endpoint's (deployment's) name.")
MODEL = typer.Option(..., "--model", "-m", help="MODEL@ALIAS (churn@champion) or MODEL/VERSION.")
FORCE = typer.Option(
    False, "--force", help="Admin override: deploy to production without the approval."
)


def _store() -> DeploymentStore:
    from loopstack.serving import deployments

    return deployments()


def _arms(arms: list[Arm]) -> str:
    parts = []
    for a in arms:
        at = f"{a.model_ref}" + (f"=v{a.version}" if a.version is not None else "")
        weight = f" {a.weight:g}%" if a.serves else ""
        parts.append(f"{a.name}:{at} ({a.role}{weight})")
    return ", ".join(parts)


def _print(d: Deployment, what: str | None = None) -> None:
    from rich.table import Table

    from loopstack.cli._output import console, fmt_time

    out = console()
    if what:
        out.print(what)
    table = Table(title=f"deployment {d.name} (revision {d.revision})", title_justify="left")
    for col in ("arm", "model", "version", "role", "weight"):
        table.add_column(col, justify="right" if col in ("version", "weight") else "left")
    for a in d.arms:
        version = "-" if a.version is None else str(a.version)
        table.add_row(a.name, a.model_ref, version, a.role, f"{a.weight:g}%")
    out.print(table)
    options = ", ".join(f"{k}={v}" for k, v in sorted(d.options.items()))
    out.print(
        f"policy {d.policy}{f' ({options})' if options else ''}, stage {d.stage}; "
        f"updated by {d.updated_by} at {fmt_time(d.updated_at)}"
    )


@app.command("create")
def create(
    name: str = NAME,
    model: str = MODEL,
    stage: str = typer.Option("staging", "--stage", help="staging or production."),
    force: bool = FORCE,
) -> None:
    """A new endpoint answering with one model version."""
    _print(_store().create(name, model, stage=stage, force=force), f"created {name}")


@app.command("show")
def show(name: str = NAME) -> None:
    """An endpoint's current deployment: policy, arms, weights; a bandit's learned state."""
    store = _store()
    d = store.get(name)
    _print(d)
    if d.policy == "bandit":
        from rich.table import Table

        from loopstack.cli._output import console

        table = Table(title="bandit state", title_justify="left")
        for col in ("arm", "pulls", "mean reward", "alpha", "beta"):
            table.add_column(col, justify="left" if col == "arm" else "right")
        for arm, s in store.bandit_state(name).items():
            table.add_row(arm, str(s.pulls), f"{s.mean_reward:.4f}", f"{s.alpha:g}", f"{s.beta:g}")
        console().print(table)


@app.command("list")
def list_deployments(
    columns: str = COLUMNS, wide: bool = WIDE, as_json: bool = JSON, as_csv: bool = CSV
) -> None:
    """Every endpoint of the project: policy, stage, arms, revision, last change."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list, show_id

    found = _store().list_deployments()
    cols = [
        Column("name", lambda d: d.name, priority=0, abbreviate=True),
        Column("policy", lambda d: d.policy, priority=1),
        Column("stage", lambda d: d.stage, priority=2),
        Column("revision", lambda d: d.revision, show_id, priority=3, justify="right"),
        Column("arms", lambda d: _arms(d.arms), priority=4, abbreviate=True, max_width=60),
        Column("updated_by", lambda d: d.updated_by, priority=6, abbreviate=True),
        Column("updated", lambda d: d.updated_at, fmt_time, priority=5),
    ]
    render_list(
        found,
        cols,
        title=f"deployments ({len(found)})",
        empty="No deployments",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("set")
def set_primary(name: str = NAME, model: str = MODEL, force: bool = FORCE) -> None:
    """Blue-green switch: MODEL answers at once; the old primary stays warm for a rollback."""
    _print(_store().set(name, model, force=force), f"switched {name} to {model}")


@app.command("canary")
def canary(
    name: str = NAME,
    model: str = MODEL,
    weight: float = typer.Option(..., "--weight", "-w", help="Percent of the traffic, e.g. 5."),
    force: bool = FORCE,
) -> None:
    """Send a share of the traffic to MODEL (sticky per routing key)."""
    _print(_store().canary(name, model, weight=weight, force=force), f"canary on {name}")


@app.command("shadow")
def shadow(name: str = NAME, model: str = MODEL, force: bool = FORCE) -> None:
    """Copy the traffic to MODEL off the critical path; the primary still answers."""
    _print(_store().shadow(name, model, force=force), f"shadowing {name} with {model}")


def _parse_arms(values: list[str], *, weighted: bool) -> dict[str, tuple[str, float]]:
    from loopstack.errors import Invalid

    shape = "NAME=MODEL:WEIGHT (a=churn/3:50)" if weighted else "NAME=MODEL (a=churn/3)"
    arms: dict[str, tuple[str, float]] = {}
    for value in values:
        arm, eq, rest = value.partition("=")
        model, weight = rest, 0.0
        if weighted:
            model, colon, text = rest.rpartition(":")
            try:
                weight = float(text) if colon else float("nan")
            except ValueError:
                weight = float("nan")
            if weight != weight:
                raise Invalid(f"an --arm is {shape}; got {value!r}", field="arm")
        if not eq or not arm or not model:
            raise Invalid(f"an --arm is {shape}; got {value!r}", field="arm")
        if arm in arms:
            raise Invalid(f"arm {arm!r} is given twice", field="arm")
        arms[arm] = (model, weight)
    return arms


ARM = typer.Option(..., "--arm", "-a", help="NAME=MODEL:WEIGHT for ab, NAME=MODEL for bandit.")


@app.command("ab")
def ab(name: str = NAME, arm: list[str] = ARM, force: bool = FORCE) -> None:
    """A weighted A/B split: --arm a=churn/3:50 --arm b=churn/4:50 (weights sum to 100)."""
    arms = _parse_arms(arm, weighted=True)
    _print(_store().ab(name, arms, force=force), f"A/B split on {name}")


@app.command("bandit")
def bandit(
    name: str = NAME,
    arm: list[str] = ARM,
    strategy: str = typer.Option("thompson", "--strategy", help="thompson or epsilon."),
    epsilon: float = typer.Option(0.1, "--epsilon", help="Exploration rate of epsilon-greedy."),
    force: bool = FORCE,
) -> None:
    """A multi-armed bandit over the arms, learning from reward feedback."""
    arms = {n: m for n, (m, _) in _parse_arms(arm, weighted=False).items()}
    got = _store().bandit(name, arms, strategy=strategy, epsilon=epsilon, force=force)
    _print(got, f"bandit on {name}")


@app.command("promote")
def promote(
    name: str = NAME,
    arm: str = typer.Option(None, "--arm", help="The arm to promote (A/B; default: canary)."),
    force: bool = FORCE,
) -> None:
    """Make the challenger (canary, shadow, or --arm) the primary; the old one stands by."""
    _print(_store().promote(name, arm=arm, force=force), f"promoted on {name}")


@app.command("rollback")
def rollback(
    name: str = NAME,
    to: int = typer.Option(None, "--to", help="The revision to restore (default: the previous)."),
    force: bool = FORCE,
) -> None:
    """Restore an earlier revision exactly (as a new revision)."""
    got = _store().rollback(name, to=to, force=force)
    _print(got, f"rolled {name} back to revision {to or got.revision - 2}")


@app.command("enrich")
def enrich(
    name: str = NAME,
    mode: str = typer.Option(
        None, "--mode", help="fail_closed or degraded (default: fail_closed, or the file's)."
    ),
    default: list[str] = typer.Option(
        [], "--default", help="FEATURE=VALUE served in degraded mode; repeat for more."
    ),
    config: Path = typer.Option(
        None, "--config", help="A JSON or YAML file with the enrichment settings."
    ),
    off: bool = typer.Option(False, "--off", help="Stop enriching: requests carry features."),
) -> None:
    """Make the endpoint take entity keys and read its models' features from the online
    store (the version's training set names them), or --off stop; a new revision."""
    from loopstack.cli._output import fail
    from loopstack.cli._serve_models import enrichment_config

    if off and (mode or default or config):
        fail("--off stops enriching: give it alone, or --mode/--default/--config without it")
    from loopstack.serving import EnrichmentConfig

    settings = None if off else enrichment_config(mode, default, config) or EnrichmentConfig()
    got = _store().set_enrichment(name, None if settings is None else settings.to_dict())
    _print(got, f"{name} {'no longer enriches' if off else 'enriches its requests'}")


@app.command("history")
def history(
    name: str = NAME,
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Every revision of an endpoint: what changed it, who, when."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list, show_id

    revisions = _store().history(name)
    cols = [
        Column("revision", lambda r: r.revision, show_id, priority=0, justify="right"),
        Column("action", lambda r: r.action, priority=1),
        Column("policy", lambda r: r.policy, priority=2),
        Column("arms", lambda r: _arms(r.arms), priority=3, abbreviate=True, max_width=60),
        Column("actor", lambda r: r.actor, priority=4, abbreviate=True),
        Column("time", lambda r: r.ts, fmt_time, priority=5),
        Column("comment", lambda r: r.comment, lambda c: c or "-", priority=6, abbreviate=True),
    ]
    render_list(
        revisions,
        cols,
        title=f"history of {name} ({len(revisions)})",
        empty="No revisions",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )
