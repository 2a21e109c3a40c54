"""Deployments over the SQL metadata store: every change a new revision, audited.

A change is worked out from the deployment as read (arms resolved through the
registry, the production rule checked), then written in one audited transaction
that first checks nobody changed the deployment meanwhile (its revision), so two
concurrent changes never lose one another: the second gets ``Conflict``.

Bandit rewards are the exception (``_bandit_state.py``): high-rate data, they bump
counters with a plain UPDATE and no audit event; the bandit's creation, and every
other change of the deployment, is audited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select, update

from loopstack.errors import AlreadyExists, Conflict, Forbidden, Invalid, NotFound
from loopstack.serving._bandit_state import BanditState
from loopstack.serving._deployments import (
    STAGES,
    Arm,
    Deployment,
    DeploymentRevision,
    DeploymentStore,
    is_version_number,
    merged_serving_options,
    parse_model_ref,
    serving_options,
    validate_arms,
    validate_deployment_name,
)
from loopstack.store import Stores
from loopstack.store.metadata._lineage_edges import add_edges
from loopstack.store.metadata.schema import BanditArm, DeploymentRow
from loopstack.store.metadata.schema import DeploymentRevision as RevisionRow
from loopstack.tracking._entities import now_ms

__all__ = ["SqlDeployments"]

D, REV = cast(Table, DeploymentRow.__table__), cast(Table, RevisionRow.__table__)
BS = cast(Table, BanditArm.__table__)


def _config(arms: list[Arm], options: dict[str, Any]) -> str:
    return json.dumps({"arms": [a.to_dict() for a in arms], "options": options}, sort_keys=True)


def _parse(config: str) -> tuple[list[Arm], dict[str, Any]]:
    got = json.loads(config)
    return [Arm.from_dict(a) for a in got["arms"]], dict(got.get("options", {}))


def _other_colour(name: str) -> str:
    return "green" if name == "blue" else "blue"


class SqlDeployments(BanditState, DeploymentStore):
    """``DeploymentStore`` of one project over the metadata DB, acting as ``actor``."""

    def __init__(self, stores: Stores, *, actor: str = "local", project_id: int = 0) -> None:
        self.stores = stores
        self.db = stores.db
        self.actor = actor
        self.project_id = project_id

    # -- reading ----------------------------------------------------------------------
    def _row(self, conn: Connection, name: str, *, lock: bool = False) -> Any:
        q = select(D).where(D.c.project_id == self.project_id, D.c.name == name)
        if lock:
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"no deployment named {name!r}")
        return row

    def _entity(self, row: Any) -> Deployment:
        arms, options = _parse(row.config)
        return Deployment(
            row.name,
            row.project_id,
            row.policy,
            arms,
            row.stage,
            row.revision,
            row.created_by,
            row.created_at,
            row.updated_by,
            row.updated_at,
            options,
        )

    def get(self, name: str) -> Deployment:
        """The deployment's latest revision; ``NotFound`` if there is none by that name."""
        return self.db.read(lambda conn: self._entity(self._row(conn, name)))

    def list_deployments(self) -> list[Deployment]:
        """Every deployment of the project, by name."""
        q = select(D).where(D.c.project_id == self.project_id).order_by(D.c.name)
        return self.db.read(lambda conn: [self._entity(r) for r in conn.execute(q)])

    def revisions(self) -> dict[str, int]:
        """Each deployment's current revision (one small query: what a replica polls)."""
        q = select(D.c.name, D.c.revision).where(D.c.project_id == self.project_id)
        return self.db.read(lambda conn: {r.name: r.revision for r in conn.execute(q)})

    def history(self, name: str) -> list[DeploymentRevision]:
        """Every revision, oldest first."""

        def run(conn: Connection) -> list[DeploymentRevision]:
            row = self._row(conn, name)
            out = []
            for r in conn.execute(
                select(REV).where(REV.c.deployment_id == row.deployment_id).order_by(REV.c.revision)
            ):
                arms, options = _parse(r.config)
                out.append(
                    DeploymentRevision(
                        r.revision,
                        r.action,
                        r.policy,
                        r.stage,
                        arms,
                        options,
                        r.actor,
                        r.ts,
                        r.comment,
                    )
                )
            return out

        return self.db.read(run)

    # -- resolving and checking arms ----------------------------------------------------
    def _registry(self) -> Any:
        from loopstack.registry import SqlRegistry

        return SqlRegistry(self.stores, actor=self.actor, project_id=self.project_id)

    def _arm(self, name: str, model_ref: str, *, weight: float, role: str) -> Arm:
        model, ref = parse_model_ref(model_ref)
        return Arm(name, model, ref, weight, role)

    def _resolve(self, arms: list[Arm]) -> list[Arm]:
        """Each arm with the version its ref names now; an unknown model, alias or
        version is refused by the registry, naming it."""
        reg = self._registry()
        out = []
        for a in arms:
            got = (
                reg.get_model_version(a.model, int(a.ref))
                if is_version_number(a.ref)
                else reg.get_version_by_alias(a.model, a.ref)
            )
            out.append(Arm(a.name, a.model, a.ref, a.weight, a.role, got.version))
        return out

    def _check_production(self, stage: str, arms: list[Arm], force: bool) -> None:
        """On a production endpoint every arm that sees traffic must be approved."""
        if stage != "production" or force:
            return
        from loopstack.auth import get_policy

        protected = set(get_policy(self.db, self.project_id).protected_aliases)
        reg = self._registry()
        for a in arms:
            if a.role == "standby" or a.version is None:
                continue
            version = reg.get_model_version(a.model, a.version)
            aliases = reg.get_registered_model(a.model).aliases
            held = sorted(al for al in protected if aliases.get(al) == a.version)
            if version.approval_state == "approved" or held:
                continue
            raise Forbidden(
                f"{a.model} version {a.version} is not approved for production (its approval "
                f"state is {version.approval_state!r} and it holds no protected alias "
                f"{sorted(protected)}): request an approval with `loopstack models promote "
                f"{a.model} {a.version}` and have another ml-engineer approve it, or deploy "
                "it to a staging endpoint; an admin may override with force"
            )

    # -- writing ------------------------------------------------------------------------
    def _write(self, fn: Callable[[Connection], Any], action: str, name: str, payload: Any) -> Any:
        return self.db.write(
            fn,
            actor=self.actor,
            action=f"deployment.{action}",
            object_type="deployment",
            object_id=name,
            payload=payload,
            project_id=self.project_id,
        )

    @staticmethod
    def _payload(d: Deployment, action: str, force: bool, comment: str = "") -> dict[str, Any]:
        return {
            "name": d.name,
            "revision": d.revision,
            "action": action,
            "policy": d.policy,
            "stage": d.stage,
            "arms": [
                {
                    "name": a.name,
                    "model": a.model_ref,
                    "version": a.version,
                    "weight": a.weight,
                    "role": a.role,
                }
                for a in d.arms
            ],
            "options": d.options,
            "force": force,
            "comment": comment,
        }

    def revise(
        self,
        current: Deployment,
        action: str,
        policy: str,
        arms: list[Arm],
        *,
        options: dict[str, Any] | None = None,
        force: bool = False,
        comment: str = "",
        reset_bandit: bool = False,
    ) -> Deployment:
        """Write the next revision of ``current`` with ``policy`` and ``arms`` as given:
        the path every verb takes, for a caller (a rollout) that works out its own arms.

        The arms are validated for the policy and resolved through the registry; on a
        production endpoint every arm that sees traffic must be approved (``force``: an
        admin's override); ``action`` and ``comment`` go into the revision and its audit
        event (``deployment.<action>``). Refused with ``Conflict`` if the deployment
        changed since ``current`` was read; without ``options`` it keeps ``current``'s
        serving options; ``reset_bandit`` starts a bandit's learned state afresh.
        Only the SQL store has it (a server's clients use the verbs).

        >>> d = deployments.get("churn-api")
        >>> deployments.revise(d, "canary", "canary", [Arm("blue", "churn", "3", 90,
        ...     "primary"), Arm("canary", "churn", "4", 10, "canary")], comment="rollout 7")
        """
        if not isinstance(action, str) or not action or len(action) > 64:
            raise Invalid(
                f"a revision's action is a short name such as 'canary'; got {action!r}",
                field="action",
            )
        options = dict(serving_options(current.options) if options is None else options)
        if action not in ("enrichment", "rollback") and "enrichment" in current.options:
            # a routing change keeps the endpoint's enrichment (a rollback restores its own)
            options.setdefault("enrichment", current.options["enrichment"])
        validate_arms(policy, arms, options)
        arms = self._resolve(arms)
        self._check_production(current.stage, arms, force)
        now = now_ms()
        new = Deployment(
            current.name,
            self.project_id,
            policy,
            arms,
            current.stage,
            current.revision + 1,
            current.created_by,
            current.created_at,
            self.actor,
            now,
            options,
        )

        def run(conn: Connection) -> Deployment:
            row = self._row(conn, current.name, lock=True)
            if row.revision != current.revision:
                raise Conflict(
                    f"deployment {current.name!r} changed meanwhile (revision "
                    f"{current.revision} -> {row.revision}); look at it again and retry"
                )
            config = _config(arms, options)
            conn.execute(
                update(D)
                .where(D.c.deployment_id == row.deployment_id)
                .values(
                    policy=policy,
                    config=config,
                    revision=new.revision,
                    updated_by=self.actor,
                    updated_at=now,
                )
            )
            self._insert_revision(conn, row.deployment_id, new, action, config, comment)
            if policy == "bandit":
                self._bandit_rows(conn, row.deployment_id, arms, reset=reset_bandit, now=now)
            return new

        return cast(
            Deployment,
            self._write(run, action, current.name, self._payload(new, action, force, comment)),
        )

    def _insert_revision(
        self,
        conn: Connection,
        deployment_id: int,
        d: Deployment,
        action: str,
        config: str,
        comment: str,
    ) -> None:
        add_edges(
            conn,
            [
                ("model_version", f"{a.model}/{a.version}", "deployment", d.name, "deployed")
                for a in d.arms
                if a.version is not None
            ],
            now_ms=d.updated_at,
        )
        conn.execute(
            REV.insert().values(
                deployment_id=deployment_id,
                revision=d.revision,
                action=action,
                stage=d.stage,
                policy=d.policy,
                config=config,
                actor=self.actor,
                ts=d.updated_at,
                comment=comment,
            )
        )

    # -- the verbs ----------------------------------------------------------------------
    def create(
        self, name: str, model: str, *, stage: str = "staging", force: bool = False
    ) -> Deployment:
        """A new endpoint answering with ``model`` alone (policy ``single``)."""
        validate_deployment_name(name)
        if stage not in STAGES:
            raise Invalid(f"a stage is one of {list(STAGES)}; got {stage!r}", field="stage")
        arms = self._resolve([self._arm("blue", model, weight=100.0, role="primary")])
        self._check_production(stage, arms, force)
        now = now_ms()
        new = Deployment(
            name, self.project_id, "single", arms, stage, 1, self.actor, now, self.actor, now, {}
        )

        def run(conn: Connection) -> Deployment:
            taken = conn.execute(
                select(D.c.deployment_id).where(D.c.project_id == self.project_id, D.c.name == name)
            ).first()
            if taken is not None:
                raise AlreadyExists(f"a deployment named {name!r} already exists")
            config = _config(arms, {})
            got = conn.execute(
                D.insert().values(
                    project_id=self.project_id,
                    name=name,
                    stage=stage,
                    policy="single",
                    config=config,
                    revision=1,
                    created_by=self.actor,
                    created_at=now,
                    updated_by=self.actor,
                    updated_at=now,
                )
            )
            deployment_id = int(cast(Any, got.inserted_primary_key)[0])
            self._insert_revision(conn, deployment_id, new, "create", config, "")
            return new

        return cast(
            Deployment, self._write(run, "create", name, self._payload(new, "create", force))
        )

    def set(self, name: str, model: str, *, force: bool = False) -> Deployment:
        """Blue-green switch: ``model`` becomes the primary; the old one stands by."""
        current = self.get(name)
        old = current.primary
        if old is None:  # an A/B split or a bandit: the new primary replaces every arm
            arms = [self._arm("blue", model, weight=100.0, role="primary")]
        else:
            standby = Arm(old.name, old.model, old.ref, 0.0, "standby", old.version)
            arms = [
                self._arm(_other_colour(old.name), model, weight=100.0, role="primary"),
                standby,
            ]
        return self.revise(current, "set", "blue-green" if old else "single", arms, force=force)

    def _primary_or_refuse(self, current: Deployment, verb: str) -> Arm:
        old = current.primary
        if old is None:
            raise Conflict(
                f"deployment {current.name!r} has no primary (its policy is {current.policy!r}): "
                f"a {verb} needs one; `set` a primary first"
            )
        return old

    def canary(self, name: str, model: str, *, weight: float, force: bool = False) -> Deployment:
        """``weight`` percent of the traffic to ``model``, sticky per routing key."""
        current = self.get(name)
        old = self._primary_or_refuse(current, "canary")
        if not 0 < float(weight) < 100:
            raise Invalid(
                f"a canary's weight is a percentage above 0 and below 100; got {weight!r}",
                field="weight",
            )
        weight = float(weight)
        arms = [
            Arm(old.name, old.model, old.ref, 100.0 - weight, "primary", old.version),
            self._arm("canary", model, weight=weight, role="canary"),
        ]
        return self.revise(current, "canary", "canary", arms, force=force)

    def shadow(self, name: str, model: str, *, force: bool = False) -> Deployment:
        """Copies of the traffic to ``model``; the primary answers alone."""
        current = self.get(name)
        old = self._primary_or_refuse(current, "shadow")
        arms = [
            Arm(old.name, old.model, old.ref, 100.0, "primary", old.version),
            self._arm("shadow", model, weight=0.0, role="shadow"),
        ]
        return self.revise(current, "shadow", "shadow", arms, force=force)

    def ab(
        self, name: str, arms: dict[str, tuple[str, float]], *, force: bool = False
    ) -> Deployment:
        """A weighted split over named arms; the weights sum to 100."""
        current = self.get(name)
        if len(arms) < 2:
            raise Invalid(f"an A/B split needs at least two arms; got {len(arms)}", field="arms")
        built = [self._arm(n, ref, weight=float(w), role="arm") for n, (ref, w) in arms.items()]
        return self.revise(current, "ab", "ab", built, force=force)

    def bandit(
        self,
        name: str,
        arms: dict[str, str],
        *,
        strategy: str = "thompson",
        epsilon: float = 0.1,
        force: bool = False,
    ) -> Deployment:
        """Arms chosen from their rewards (Thompson sampling or epsilon-greedy)."""
        current = self.get(name)
        share = 100.0 / max(1, len(arms))
        built = [self._arm(n, ref, weight=share, role="arm") for n, ref in arms.items()]
        options = {**serving_options(current.options), "strategy": strategy, "epsilon": epsilon}
        return self.revise(
            current, "bandit", "bandit", built, options=options, force=force, reset_bandit=True
        )

    def promote(self, name: str, *, arm: str | None = None, force: bool = False) -> Deployment:
        """The challenger (canary, shadow, or a named / the best arm) becomes the primary."""
        current = self.get(name)
        old = current.primary
        if arm is None:
            if current.policy in ("canary", "shadow"):
                arm = next(a.name for a in current.arms if a.role == current.policy)
            elif current.policy == "bandit":
                stats = self.bandit_state(name)
                arm = max(current.arms, key=lambda a: stats[a.name].mean_reward).name
            else:
                raise Conflict(
                    f"deployment {name!r} has no challenger to promote (its policy is "
                    f"{current.policy!r}); name the arm to promote"
                    if current.policy == "ab"
                    else f"deployment {name!r} has no challenger to promote (its policy is "
                    f"{current.policy!r}): start a canary, shadow, A/B split or bandit first"
                )
        winner = current.arm(arm)
        if winner.role in ("primary", "standby"):
            raise Conflict(f"arm {arm!r} of {name!r} is the {winner.role}, not a challenger")
        taken = old.name if old else ""
        new_name = _other_colour(taken)
        arms = [Arm(new_name, winner.model, winner.ref, 100.0, "primary", winner.version)]
        if old is not None:
            arms.append(Arm(old.name, old.model, old.ref, 0.0, "standby", old.version))
        return self.revise(
            current,
            "promote",
            "blue-green" if old else "single",
            arms,
            force=force,
            comment=f"promoted arm {arm!r}",
        )

    def set_enrichment(self, name: str, enrichment: dict[str, Any] | None) -> Deployment:
        """Set (or, with None, remove) the endpoint's feature enrichment: a new revision."""
        current = self.get(name)
        options = {k: v for k, v in current.options.items() if k != "enrichment"}
        if enrichment is not None:
            from loopstack.serving._enrich_config import EnrichmentConfig

            options["enrichment"] = EnrichmentConfig.parse(enrichment).to_dict()
        arms = [Arm.from_dict(a.to_dict()) for a in current.arms]
        return self.revise(
            current,
            "enrichment",
            current.policy,
            arms,
            options=options,
            comment="enrichment " + ("off" if enrichment is None else "set"),
        )

    def rollback(self, name: str, *, to: int | None = None, force: bool = False) -> Deployment:
        """Restore revision ``to`` (default: the one before the latest) as a new revision."""
        current = self.get(name)
        target = current.revision - 1 if to is None else to
        if not isinstance(target, int) or not 1 <= target < current.revision:
            raise Invalid(
                f"a rollback goes to an earlier revision, from 1 to {current.revision - 1}; "
                f"got {target!r}"
                if current.revision > 1
                else f"deployment {name!r} has only revision 1: there is nothing to roll back to",
                field="to",
            )
        old = next(r for r in self.history(name) if r.revision == target)
        return self.revise(
            current,
            "rollback",
            old.policy,
            old.arms,
            options=old.options,
            force=force,
            comment=f"rolled back to revision {target}",
        )

    def configure(self, name: str, options: dict[str, Any], *, force: bool = False) -> Deployment:
        """Serving options as a new revision, the arms and policy unchanged."""
        current = self.get(name)
        merged = merged_serving_options(current.options, options)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
        return self.revise(
            current,
            "configure",
            current.policy,
            current.arms,
            options=merged,
            force=force,
            comment=f"serving options {shown}",
        )

    def delete(self, name: str) -> None:
        """Remove the endpoint with its revisions and bandit state (the audit log keeps
        every change)."""

        def run(conn: Connection) -> None:
            row = self._row(conn, name, lock=True)
            conn.execute(delete(BS).where(BS.c.deployment_id == row.deployment_id))
            conn.execute(delete(REV).where(REV.c.deployment_id == row.deployment_id))
            conn.execute(delete(D).where(D.c.deployment_id == row.deployment_id))

        self._write(run, "delete", name, {"name": name})
