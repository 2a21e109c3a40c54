"""Triggers of the closed loop: what each kind watches, and when it fires.

A ``Trigger`` names a pipeline (an entrypoint ``pkg.module:attr`` or
``path/file.py:attr``), its params, and a kind with its spec:

| kind | spec | fires | dedup key |
| --- | --- | --- | --- |
| cron | schedule | at each scheduled minute (missed ones coalesce into the latest) | the minute |
| dataset | dataset | once per new version of the dataset | the version |
| drift | endpoint, metric (drift_share), above, window, reference | metric > above | window end |
| performance | endpoint, metric (accuracy), below, window (1h) | metric < below | window end |
| kpi | kpi, below, window (1h), endpoint (any) | the window's mean < below | window end |
| alert | rule | each new firing of the alert rule | the alert event id |
| manual | (none) | on ``TriggerStore.fire_manual`` | a request id |

Drift, performance and kpi triggers take an optional ``cooldown`` (a duration, like the
``window``): after a firing the trigger does not fire again until the cooldown has passed,
nor while a firing of it is under way or a rollout on its endpoint is (its retraining's
rollout, most often). Without one each window over the threshold fires: after a
retraining the next windows are often still drifted against the new version's reference,
which would fire again and again. The controller works out whether a trigger is held back
(``TriggerContext.hold``, from the stored firings and rollouts); ``check`` answers such a
firing with ``held`` set, which the controller reports once per window and does not record.

A drift trigger's ``reference`` is a dataset (``"name"`` or ``"name/3"``); without one
the reference is the training set of the model version serving the endpoint.

``check(trigger, state, ctx, now)`` is pure apart from reading through ``ctx``: it
answers the firings and the trigger's next state; recording them is the store's job.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from loopstack.errors import Invalid
from loopstack.loop._cron import CronSchedule

__all__ = ["KINDS", "Firing", "Trigger", "TriggerContext", "check", "describe"]

#: kind -> (required spec keys, optional spec keys with defaults)
_SPECS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "cron": (("schedule",), {}),
    "dataset": (("dataset",), {}),
    "drift": (
        ("endpoint", "above"),
        {"metric": "drift_share", "window": "1h", "reference": None, "cooldown": None},
    ),
    "performance": (
        ("endpoint", "below"),
        {"metric": "accuracy", "window": "1h", "cooldown": None},
    ),
    "kpi": (("kpi", "below"), {"window": "1h", "endpoint": None, "cooldown": None}),
    "alert": (("rule",), {}),
    "manual": ((), {}),
}
KINDS: tuple[str, ...] = tuple(_SPECS)
_NAME = r"[A-Za-z0-9][\w.\-]{0,127}"


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"the {what} must be non-empty text; got {value!r} instead", field=what)
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"the {what} must be a finite number; got {value!r} instead", field=what)
    return float(value)


def _window_s(value: Any) -> float:
    from loopstack.monitoring import parse_window

    return parse_window(value)


def cooldown_s(trigger: Trigger) -> float | None:
    """The trigger's cooldown in seconds (None: it has none)."""
    value = trigger.spec.get("cooldown")
    return None if value is None else _window_s(value)


def _valid_cooldown(kind: str, value: Any) -> None:
    try:
        _window_s(value)
    except Invalid as exc:
        raise Invalid(
            f"a {kind} trigger's 'cooldown' must be positive seconds or text like '30m', "
            f"'1h', '2d'; got {value!r} instead",
            field="cooldown",
        ) from exc


@dataclass(frozen=True)
class Trigger:
    """A trigger definition, validated when made.

    >>> Trigger("nightly", "cron", "jobs/train.py:training", spec={"schedule": "0 2 * * *"})
    ... # doctest: +SKIP
    """

    name: str
    kind: str
    pipeline: str
    params: Mapping[str, Any] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import re

        if not isinstance(self.name, str) or not re.fullmatch(_NAME, self.name):
            raise Invalid(
                "a trigger name must be 1-128 letters, digits, '_', '-' or '.', starting with"
                f" a letter or digit; got {self.name!r} instead",
                field="name",
            )
        if self.kind not in _SPECS:
            raise Invalid(
                f"the trigger kind must be one of {', '.join(KINDS)}; got {self.kind!r} instead",
                field="kind",
            )
        if not isinstance(self.pipeline, str) or ":" not in self.pipeline.strip(":"):
            raise Invalid(
                "the pipeline must be an entrypoint like 'pkg.module:training' or "
                f"'path/file.py:training'; got {self.pipeline!r} instead",
                field="pipeline",
            )
        if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
            raise Invalid(
                f"the params must be a mapping of names to values; got {self.params!r} instead",
                field="params",
            )
        try:
            json.dumps(dict(self.params), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise Invalid(
                f"the params must be JSON values (numbers, text, lists, mappings); "
                f"got {self.params!r} instead ({exc})",
                field="params",
            ) from exc
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "spec", _validated_spec(self.kind, self.spec))

    def to_dict(self) -> dict[str, Any]:
        """The definition as plain JSON-able data."""
        return {
            "name": self.name,
            "kind": self.kind,
            "pipeline": self.pipeline,
            "params": dict(self.params),
            "spec": dict(self.spec),
        }


def _validated_spec(kind: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise Invalid(f"a trigger's spec must be a mapping; got {spec!r} instead", field="spec")
    required, optional = _SPECS[kind]
    known = (*required, *optional)
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise Invalid(
            f"a {kind} trigger's spec takes {', '.join(known) or 'nothing'}; "
            f"got {', '.join(map(repr, unknown))} instead",
            field="spec",
        )
    missing = [k for k in required if spec.get(k) is None]
    if missing:
        raise Invalid(
            f"a {kind} trigger needs {', '.join(map(repr, missing))} in its spec; "
            f"got {dict(spec)!r}",
            field="spec",
        )
    out = {**optional, **dict(spec)}
    if kind == "cron":
        out["schedule"] = CronSchedule.parse(out["schedule"]).expression
    for key in ("dataset", "endpoint", "metric", "kpi", "rule", "reference"):
        if key in out and (out[key] is not None or key in required):
            _text(out[key], f"{kind} trigger's {key!r}")
    for key in ("above", "below"):
        if key in out:
            out[key] = _number(out[key], f"{kind} trigger's {key!r}")
    if "window" in out:
        _window_s(out["window"])
    if out.get("cooldown") is not None:
        _valid_cooldown(kind, out["cooldown"])
    return out


@dataclass(frozen=True)
class Firing:
    """One event a trigger saw: why it fired and the key that makes it fire once."""

    dedup_key: str
    reason: str
    #: the trigger's state once this event is recorded (None: unchanged)
    state: dict[str, Any] | None = None
    #: why the trigger may not fire now (its cooldown): reported, not recorded
    held: str | None = None


@dataclass
class TriggerContext:
    """What checks read through: the stores, the trigger's project, and ``observe``
    (``loopstack.monitoring._monitor.observe`` unless a test injects one)."""

    stores: Any
    project_id: int = 0
    observe: Callable[..., Any] | None = None
    #: epoch seconds the trigger was defined (the cron's first look-back)
    created_at: float = 0.0
    #: ``hold(now)``: why the trigger may not fire at ``now`` (its cooldown), or None
    hold: Callable[[float], str | None] | None = None


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:,.0f}"


def _window_end(now: float, window: Any) -> tuple[float, float]:
    """The window of a threshold check ending at the last bucket boundary, so each
    window length fires at most once."""
    seconds = _window_s(window)
    end = math.floor(now / seconds) * seconds
    return seconds, end


def _observed(trigger: Trigger, ctx: TriggerContext, now: float) -> tuple[float | None, str]:
    spec = trigger.spec
    _, end = _window_end(now, spec["window"])
    observe: Callable[..., Any] | None = ctx.observe
    if observe is None:
        from loopstack.monitoring._monitor import observe as observe_endpoint

        observe = observe_endpoint
    extra: dict[str, Any] = {}
    if spec.get("reference"):
        from loopstack.data import DatasetStore

        name, _, version = str(spec["reference"]).partition("/")
        dv = DatasetStore(ctx.stores, project_id=ctx.project_id).get(name, version or None)
        extra["reference"] = dv.to_arrow()
    obs = observe(
        spec["endpoint"],
        spec["window"],
        until=end,
        stores=ctx.stores,
        project_id=ctx.project_id,
        **extra,
    )
    value = obs.metrics().get(spec["metric"])
    return (None if value is None else float(value)), _iso(end)


def _check_threshold(trigger: Trigger, ctx: TriggerContext, now: float) -> list[Firing]:
    spec = trigger.spec
    value, key = _observed(trigger, ctx, now)
    if value is None:
        return []
    if trigger.kind == "drift" and value > spec["above"]:
        sign, bound = ">", spec["above"]
    elif trigger.kind == "performance" and value < spec["below"]:
        sign, bound = "<", spec["below"]
    else:
        return []
    reason = (
        f"{spec['metric']} {_fmt(value)} {sign} {_fmt(bound)} on {spec['endpoint']} "
        f"over {spec['window']}"
    )
    return [Firing(key, reason)]


def _check_kpi(trigger: Trigger, ctx: TriggerContext, now: float) -> list[Firing]:
    from loopstack.monitoring import read_kpis
    from loopstack.store.events import EventLog

    spec = trigger.spec
    seconds, end = _window_end(now, spec["window"])
    frame = read_kpis(
        spec["kpi"],
        spec["endpoint"],
        since=end - seconds,
        until=end,
        events=EventLog(ctx.stores, project_id=ctx.project_id),
    )
    if not len(frame):
        return []
    mean = float(frame["value"].mean())
    if not mean < spec["below"]:
        return []
    where = f" on {spec['endpoint']}" if spec["endpoint"] else ""
    reason = (
        f"kpi {spec['kpi']} mean {_fmt(mean)} < {_fmt(spec['below'])}{where} over "
        f"{spec['window']} ({len(frame)} values)"
    )
    return [Firing(_iso(end), reason)]


def _check_cron(
    trigger: Trigger, state: dict[str, Any], ctx: TriggerContext, now: float
) -> list[Firing]:
    schedule = CronSchedule.parse(trigger.spec["schedule"])
    after = float(state.get("last_tick", ctx.created_at))
    tick = schedule.latest(
        dt.datetime.fromtimestamp(after, dt.UTC), dt.datetime.fromtimestamp(now, dt.UTC)
    )
    if tick is None:
        return []
    key = tick.strftime("%Y-%m-%dT%H:%MZ")
    after_tick = {**state, "last_tick": tick.timestamp()}
    return [Firing(key, f"schedule {schedule.expression!r} at {key}", after_tick)]


def _check_dataset(trigger: Trigger, state: dict[str, Any], ctx: TriggerContext) -> list[Firing]:
    from loopstack.data import DatasetStore

    name = trigger.spec["dataset"]
    seen = int(state.get("last_version", 0))
    versions = DatasetStore(ctx.stores, project_id=ctx.project_id).list(name)
    fresh = sorted(v.version for v in versions if v.version > seen)
    return [
        Firing(f"v{v}", f"dataset {name!r} version {v} registered", {**state, "last_version": v})
        for v in fresh
    ]


def _check_alert(trigger: Trigger, state: dict[str, Any], ctx: TriggerContext) -> list[Firing]:
    from loopstack.loop._firings import fired_alerts

    rule = trigger.spec["rule"]
    seen = int(state.get("last_event_id", 0))
    events = fired_alerts(ctx.stores.db, ctx.project_id, rule, after_id=seen)
    return [
        Firing(
            f"alert-{e['id']}",
            f"alert {rule!r} fired: {e['metric']} {_fmt(e['value'])} {e['comparison']} "
            f"{_fmt(e['threshold'])} at {_iso(e['at'])}",
            {**state, "last_event_id": e["id"]},
        )
        for e in events
    ]


#: what a trigger's state says of its last evaluation held back by its cooldown
_HELD = ("held_window", "held_reason", "held_at")


def _held(message: str, window: str, now: float) -> dict[str, Any]:
    return {"held_window": window, "held_reason": message, "held_at": now}


def check(trigger: Trigger, state: dict[str, Any], ctx: TriggerContext, now: float) -> list[Firing]:
    """The firings ``trigger`` sees at ``now`` (epoch seconds), oldest first, given
    ``state`` (what it has seen already); each carries the state once it is recorded.
    Manual triggers never fire here."""
    if trigger.kind == "cron":
        return _check_cron(trigger, state, ctx, now)
    if trigger.kind == "dataset":
        return _check_dataset(trigger, state, ctx)
    if trigger.kind in ("drift", "performance", "kpi"):
        key = _iso(_window_end(now, trigger.spec["window"])[1])
        if state.get("fired_window") == key:  # this window fired already: skip the work
            return []
        hold = ctx.hold if trigger.spec.get("cooldown") is not None else None
        if hold is not None and state.get("held_window") == key and hold(now):
            return []  # this window was held back already, and still is: said once
        seen = (_check_kpi if trigger.kind == "kpi" else _check_threshold)(trigger, ctx, now)
        why = hold(now) if seen and hold is not None else None
        if why:
            return [
                replace(f, held=why, state={**state, **_held(f"{f.reason} but {why}", key, now)})
                for f in seen
            ]
        fresh = {k: v for k, v in state.items() if k not in _HELD}
        return [replace(f, state={**fresh, "fired_window": f.dedup_key}) for f in seen]
    if trigger.kind == "alert":
        return _check_alert(trigger, state, ctx)
    return []


def describe(trigger: Trigger) -> str:
    """One line saying what the trigger watches ("drift_share > 0.3 on fraud over 1h")."""
    s = trigger.spec
    if trigger.kind == "cron":
        return f"cron {s['schedule']}"
    if trigger.kind == "dataset":
        return f"new version of {s['dataset']}"
    rest = f", cooldown {s['cooldown']}" if s.get("cooldown") is not None else ""
    if trigger.kind == "drift":
        return f"{s['metric']} > {s['above']:g} on {s['endpoint']} over {s['window']}{rest}"
    if trigger.kind == "performance":
        return f"{s['metric']} < {s['below']:g} on {s['endpoint']} over {s['window']}{rest}"
    if trigger.kind == "kpi":
        where = f" on {s['endpoint']}" if s.get("endpoint") else ""
        return f"kpi {s['kpi']} < {s['below']:g}{where} over {s['window']}{rest}"
    if trigger.kind == "alert":
        return f"alert {s['rule']} fires"
    return "manual"
