"""Alert rules, their state and the alert history over the SQL metadata store.

Saving or deleting a rule, and every alert fired or resolved, is written through the
audited path (``Database.write``), in the same transaction as the row it changes.
The per-window state (counters, last value) is high-rate data and is written
without an audit event, like the event log's segments.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, insert, select, update

from loopstack.errors import Conflict, Invalid, NotFound
from loopstack.monitoring._alerts import AlertEvent, AlertRule, RuleState, evaluate
from loopstack.store import Stores
from loopstack.store.metadata.schema import AlertEventRow, AlertRuleRow, AlertRuleState

__all__ = ["AlertStore"]

R = cast(Table, AlertRuleRow.__table__)
S = cast(Table, AlertRuleState.__table__)
E = cast(Table, AlertEventRow.__table__)


def _ms(t: float | None) -> int | None:
    return None if t is None else int(round(t * 1000))


def _s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


class _Notable(Exception):
    """The window fires/resolves other than the transaction was opened for."""

    def __init__(self, event: AlertEvent | None) -> None:
        super().__init__(event)
        self.event = event


class AlertStore:
    """The alert rules of one project over the metadata DB, acting as ``actor``.

    >>> store = AlertStore(open_stores(), actor="alice")            # doctest: +SKIP
    >>> store.save_rule(AlertRule("p99", "latency_p99_ms", ">", 250))  # doctest: +SKIP
    >>> store.evaluate({"latency_p99_ms": 310.0})                    # doctest: +SKIP
    [AlertEvent(kind='fired', ...)]
    """

    def __init__(
        self,
        stores: Stores,
        *,
        actor: str = "local",
        project_id: int = 0,
        router: Any = None,
    ) -> None:
        self.db = stores.db
        self.actor = actor
        self.project_id = project_id
        #: an ``AlertRouter`` (or anything with ``deliver(events)``) told of each
        #: fired/resolved alert after it is stored
        self.router = router

    # -- rules ------------------------------------------------------------------------
    def save_rule(self, rule: AlertRule) -> AlertRule:
        """Create ``rule`` or replace the rule of its name (its state then starts afresh
        if the metric, comparison or threshold changed)."""
        if not isinstance(rule, AlertRule):
            raise Invalid(f"save_rule expects an AlertRule; got {rule!r} instead")
        definition = json.dumps(rule.to_dict(), sort_keys=True)
        now = int(time.time() * 1000)

        def fn(conn: Connection) -> str:
            row = conn.execute(
                select(R).where(R.c.project_id == self.project_id, R.c.name == rule.name)
            ).first()
            if row is None:
                conn.execute(
                    insert(R).values(
                        project_id=self.project_id,
                        name=rule.name,
                        metric=rule.metric,
                        definition=definition,
                        created_by=self.actor,
                        created_at=now,
                        updated_by=self.actor,
                        updated_at=now,
                    )
                )
                return "create"
            old = AlertRule.from_dict(json.loads(row.definition))
            conn.execute(
                update(R)
                .where(R.c.rule_id == row.rule_id)
                .values(
                    metric=rule.metric,
                    definition=definition,
                    updated_by=self.actor,
                    updated_at=now,
                )
            )
            if (old.metric, old.comparison, old.threshold) != (
                rule.metric,
                rule.comparison,
                rule.threshold,
            ):
                conn.execute(delete(S).where(S.c.rule_id == row.rule_id))
            return "update"

        self.db.write(
            fn,
            actor=self.actor,
            action="alert_rule.save",
            object_type="alert_rule",
            object_id=rule.name,
            payload=rule.to_dict(),
            project_id=self.project_id,
        )
        return rule

    def get_rule(self, name: str) -> AlertRule:
        """The rule called ``name``; ``NotFound`` if there is none."""
        row = self.db.read(
            lambda conn: conn.execute(
                select(R.c.definition).where(R.c.project_id == self.project_id, R.c.name == name)
            ).first()
        )
        if row is None:
            raise NotFound(f"no alert rule named {name!r}")
        return AlertRule.from_dict(json.loads(row.definition))

    def list_rules(self) -> list[AlertRule]:
        """Every rule of the project, by name."""
        rows = self.db.read(
            lambda conn: conn.execute(
                select(R.c.definition).where(R.c.project_id == self.project_id).order_by(R.c.name)
            ).all()
        )
        return [AlertRule.from_dict(json.loads(r.definition)) for r in rows]

    def delete_rule(self, name: str) -> None:
        """Delete the rule called ``name`` and its state; its alert history stays."""

        def fn(conn: Connection) -> None:
            row = conn.execute(
                select(R.c.rule_id).where(R.c.project_id == self.project_id, R.c.name == name)
            ).first()
            if row is None:
                raise NotFound(f"no alert rule named {name!r}")
            conn.execute(delete(S).where(S.c.rule_id == row.rule_id))
            conn.execute(delete(R).where(R.c.rule_id == row.rule_id))

        self.db.write(
            fn,
            actor=self.actor,
            action="alert_rule.delete",
            object_type="alert_rule",
            object_id=name,
            project_id=self.project_id,
        )

    def state(self, name: str) -> RuleState:
        """Where the rule called ``name`` stands now."""
        row = self.db.read(
            lambda conn: conn.execute(
                select(S)
                .join(R, R.c.rule_id == S.c.rule_id)
                .where(R.c.project_id == self.project_id, R.c.name == name)
            ).first()
        )
        if row is None:
            self.get_rule(name)  # NotFound if the rule itself is missing
            return RuleState()
        return self._state(row)

    def rule_states(self) -> list[tuple[AlertRule, RuleState]]:
        """Every rule of the project with where it stands now, by name, in one query
        (a rule never evaluated has a fresh ``RuleState``)."""
        rows = self.db.read(
            lambda conn: conn.execute(
                select(R.c.definition, S)
                .select_from(R.outerjoin(S, S.c.rule_id == R.c.rule_id))
                .where(R.c.project_id == self.project_id)
                .order_by(R.c.name)
            ).all()
        )
        return [
            (
                AlertRule.from_dict(json.loads(r.definition)),
                RuleState() if r.rule_id is None else self._state(r),
            )
            for r in rows
        ]

    @staticmethod
    def _state(row: Any) -> RuleState:
        return RuleState(
            breaches=row.breaches,
            clean=row.clean,
            firing_since=_s(row.firing_since),
            resolved_at=_s(row.resolved_at),
            last_value=row.last_value,
            last_evaluated=_s(row.last_evaluated),
        )

    # -- evaluation -------------------------------------------------------------------
    def evaluate(
        self,
        values: Mapping[str, float],
        *,
        labels: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> list[AlertEvent]:
        """One evaluation window: each rule whose metric is in ``values`` steps once.

        With ``labels`` (the series the values belong to, e.g. ``{"endpoint": "churn"}``)
        only rules whose labels all match step; a rule without labels matches every
        series, so give per-endpoint rules their endpoint label. Returns every event
        (fired, resolved, suppressed, deduplicated); fired and resolved ones are stored,
        audited and then handed to the router.
        """
        if not isinstance(values, Mapping):
            raise Invalid(f"evaluate expects a mapping of metric to value; got {values!r}")
        if labels is not None and not isinstance(labels, Mapping):
            raise Invalid(f"'labels' must be a mapping of str to str; got {labels!r} instead")
        given = dict(labels or {})
        at = time.time() if now is None else float(now)
        rows = self.db.read(
            lambda conn: conn.execute(
                select(R.c.rule_id, R.c.name, R.c.definition)
                .where(R.c.project_id == self.project_id, R.c.metric.in_(list(values)))
                .order_by(R.c.name)
            ).all()
        )
        out: list[AlertEvent] = []
        for row in rows:
            rule = AlertRule.from_dict(json.loads(row.definition))
            if any(given.get(k) != v for k, v in rule.labels.items()):
                continue
            out.extend(self._step(row.rule_id, rule, values[rule.metric], at))
        if self.router is not None:
            notable = [e for e in out if e.kind in ("fired", "resolved")]
            if notable:
                self.router.deliver(notable)
        return out

    def _step(self, rule_id: int, rule: AlertRule, value: float, at: float) -> list[AlertEvent]:
        """Step one rule: unaudited while nothing fires or resolves; when the window
        fires or resolves, the transaction is rolled back and redone on the audited path
        (the action and payload are known only once the state is read under the lock)."""

        def fn(conn: Connection, audited_kind: str | None) -> list[AlertEvent]:
            row = conn.execute(select(S).where(S.c.rule_id == rule_id).with_for_update()).first()
            if conn.execute(select(R.c.rule_id).where(R.c.rule_id == rule_id)).first() is None:
                return []  # deleted meanwhile
            state = RuleState() if row is None else self._state(row)
            new, events = evaluate(rule, state, value, at)
            notable = [e for e in events if e.kind in ("fired", "resolved")]
            if (notable[0].kind if notable else None) != audited_kind:
                raise _Notable(notable[0] if notable else None)
            values = {
                "breaches": new.breaches,
                "clean": new.clean,
                "firing_since": _ms(new.firing_since),
                "resolved_at": _ms(new.resolved_at),
                "last_value": new.last_value,
                "last_evaluated": _ms(new.last_evaluated),
            }
            if row is None:
                conn.execute(insert(S).values(rule_id=rule_id, **values))
            else:
                conn.execute(update(S).where(S.c.rule_id == rule_id).values(**values))
            for e in notable:
                conn.execute(
                    insert(E).values(
                        project_id=self.project_id,
                        rule=rule.name,
                        kind=e.kind,
                        metric=rule.metric,
                        severity=rule.severity,
                        category=rule.category,
                        value=e.value,
                        threshold=rule.threshold,
                        comparison=rule.comparison,
                        labels=json.dumps(rule.labels, sort_keys=True),
                        at=_ms(e.at),
                        started_at=_ms(e.started_at),
                    )
                )
            return events

        expected: AlertEvent | None = None
        for _ in range(3):  # another evaluator may move the state between two attempts
            try:
                if expected is None:
                    return self.db.write_unaudited(lambda conn: fn(conn, None))
                event = expected
                return self.db.write(
                    functools.partial(fn, audited_kind=event.kind),
                    actor=self.actor,
                    action=f"alert.{event.kind}",
                    object_type="alert",
                    object_id=rule.name,
                    payload={k: v for k, v in event.to_dict().items() if k != "description"},
                    project_id=self.project_id,
                )
            except _Notable as got:
                expected = got.event
        raise Conflict(
            f"alert rule {rule.name!r} was evaluated concurrently three times in a row; "
            "evaluate the window again"
        )

    # -- history ----------------------------------------------------------------------
    def history(
        self, *, rule: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Alerts fired and resolved, oldest first (times in epoch seconds)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise Invalid(f"the 'limit' parameter must be an integer >= 1; got {limit!r} instead")

        def fn(conn: Connection) -> list[Any]:
            q = select(E).where(E.c.project_id == self.project_id)
            if rule is not None:
                q = q.where(E.c.rule == rule)
            if since is not None:
                q = q.where(E.c.at >= _ms(since))
            return list(conn.execute(q.order_by(E.c.at.desc(), E.c.id.desc()).limit(limit)).all())

        rows = self.db.read(fn)
        return [
            {
                "rule": r.rule,
                "kind": r.kind,
                "metric": r.metric,
                "severity": r.severity,
                "category": r.category,
                "value": r.value,
                "threshold": r.threshold,
                "comparison": r.comparison,
                "labels": json.loads(r.labels),
                "at": _s(r.at),
                "started_at": _s(r.started_at),
            }
            for r in reversed(rows)
        ]
