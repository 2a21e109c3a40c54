"""Aliases: resolve, move (checked against the signature, protected by approvals), delete,
and their history.

A mixin of ``SqlRegistry``, as ``Approvals`` is: it uses the registry's row lookups
and writes and owns no table the registry does not.
"""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select

from loopstack.errors import Conflict, Forbidden, NotFound
from loopstack.registry._compat import feature_columns, signature_breaks
from loopstack.registry._entities import (
    AliasMove,
    ModelVersion,
    validate_alias,
)
from loopstack.store.metadata.schema import (
    AliasMove as AliasMoveRow,
)
from loopstack.store.metadata.schema import (
    ApprovalRequest as ApprovalRow,
)
from loopstack.store.metadata.schema import (
    ModelAlias,
    ModelVersionTag,
    Project,
    RegisteredModelTag,
)
from loopstack.store.metadata.schema import (
    ModelVersion as VersionRow,
)
from loopstack.store.metadata.schema import (
    RegisteredModel as ModelRow,
)
from loopstack.tracking._entities import now_ms

__all__ = ["Aliases"]

RM, RMT = cast(Table, ModelRow.__table__), cast(Table, RegisteredModelTag.__table__)
MV, MVT = cast(Table, VersionRow.__table__), cast(Table, ModelVersionTag.__table__)
AL, MOVES = cast(Table, ModelAlias.__table__), cast(Table, AliasMoveRow.__table__)
AP = cast(Table, ApprovalRow.__table__)
PR = cast(Table, Project.__table__)


class Aliases:
    """The alias verbs of ``SqlRegistry`` (mixed into it)."""

    # provided by SqlRegistry
    project_id: int
    actor: str
    db: Any
    _model_row: Any
    _version_row: Any
    _versions: Any
    _policy: Any
    _write: Any

    # -- aliases --------------------------------------------------------------------
    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        def run(conn: Connection) -> ModelVersion:
            model = self._model_row(conn, name)
            if alias == "latest":
                number = conn.execute(
                    select(func.max(MV.c.version)).where(MV.c.model_id == model.model_id)
                ).scalar()
                if number is None:
                    raise NotFound(f"model {name!r} has no versions yet")
            else:
                number = conn.execute(
                    select(AL.c.version).where(AL.c.model_id == model.model_id, AL.c.alias == alias)
                ).scalar()
                if number is None:
                    raise NotFound(f"model {name!r} has no alias {alias!r}")
            return self._versions(
                conn, name, [self._version_row(conn, model.model_id, name, number)]
            )[0]

        return cast(ModelVersion, self.db.read(run))

    @staticmethod
    def _tags_of(conn: Connection, row: Any) -> dict[str, str]:
        """A version row's tags."""
        from loopstack.store.metadata.schema import ModelVersionTag

        mvt = cast(Table, ModelVersionTag.__table__)
        q = select(mvt.c.key, mvt.c.value).where(
            mvt.c.model_id == row.model_id, mvt.c.version == row.version
        )
        return {k: v for k, v in conn.execute(q).all()}

    @staticmethod
    def _alias_version(conn: Connection, model: Any, alias: str) -> int | None:
        """The version ``alias`` names now (None: it names none)."""
        return cast(
            "int | None",
            conn.execute(
                select(AL.c.version).where(AL.c.model_id == model.model_id, AL.c.alias == alias)
            ).scalar(),
        )

    def _refuse_breaking_move(
        self, conn: Connection, model: Any, name: str, alias: str, target: Any
    ) -> None:
        """``Conflict`` if moving ``alias`` from where it is to the version row ``target``
        breaks its callers (a dropped or new required column, a changed dtype)."""
        current = self._alias_version(conn, model, alias)
        if current is None or current == target.version:
            return
        old = self._version_row(conn, model.model_id, name, current)
        fed = (
            feature_columns(conn, model.project_id, self._tags_of(conn, old)),
            feature_columns(conn, model.project_id, self._tags_of(conn, target)),
        )
        breaks = signature_breaks(json.loads(old.signature), json.loads(target.signature), fed=fed)
        if breaks:
            raise Conflict(
                f"moving {name}@{alias} from version {current} to {target.version} "
                f"is refused: version {target.version} "
                + "; ".join(breaks)
                + " (pass force=True to move it anyway)"
            )

    def _move_alias(
        self,
        conn: Connection,
        model: Any,
        name: str,
        alias: str,
        version: int | None,
        *,
        force: bool,
        reason: str,
        approval_id: str | None,
    ) -> AliasMove:
        current = self._alias_version(conn, model, alias)
        now = now_ms()
        if version is not None:
            target = self._version_row(conn, model.model_id, name, version)
            if not force:
                self._refuse_breaking_move(conn, model, name, alias, target)
            stmt = self.db.insert(AL).values(
                model_id=model.model_id, alias=alias, version=target.version, updated_at=now
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_id", "alias"],
                    set_={"version": target.version, "updated_at": now},
                )
            )
            version = target.version
        else:
            if current is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            conn.execute(delete(AL).where(AL.c.model_id == model.model_id, AL.c.alias == alias))
        conn.execute(
            MOVES.insert().values(
                model_id=model.model_id,
                alias=alias,
                from_version=current,
                to_version=version,
                actor=self.actor,
                ts=now,
                reason=reason,
                approval_id=approval_id,
            )
        )
        return AliasMove(alias, current, version, self.actor, now, reason, approval_id)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str,
        *,
        force: bool = False,
        reason: str = "",
        override: bool = False,
    ) -> AliasMove:
        """Point ``alias`` at ``version``. Protected aliases need an approved request.

        ``override`` (admins only: the caller checks the role) skips the approval.
        """
        alias = validate_alias(alias)

        def run(conn: Connection) -> AliasMove:
            model = self._model_row(conn, name, lock=True)
            self._version_row(conn, model.model_id, name, version)
            policy = self._policy(conn, model.project_id)
            if alias in policy["protected_aliases"] and not override:
                raise Forbidden(
                    f"{alias!r} is a protected alias of {name!r}: it moves only through an "
                    f"approved request (request one with `loopstack models promote {name} "
                    f"{version} --alias {alias}`, then have an ml-engineer other than the "
                    "author approve it)"
                )
            return self._move_alias(
                conn,
                model,
                name,
                alias,
                int(version),
                force=force,
                reason=reason or ("override" if override else ""),
                approval_id=None,
            )

        # Recorded against the version the alias now points to: it is part of its trail.
        return cast(
            AliasMove,
            self._write(
                run,
                "model.set_alias",
                lambda move: f"{name}/{move.to_version}",
                {"alias": alias, "version": str(version), "force": force, "override": override},
            ),
        )

    def delete_alias(self, name: str, alias: str, *, override: bool = False) -> AliasMove:
        def run(conn: Connection) -> AliasMove:
            model = self._model_row(conn, name, lock=True)
            if alias in self._policy(conn, model.project_id)["protected_aliases"] and not override:
                raise Forbidden(
                    f"{alias!r} is a protected alias of {name!r}: removing it "
                    "needs an admin override"
                )
            return self._move_alias(
                conn, model, name, alias, None, force=True, reason="", approval_id=None
            )

        return cast(AliasMove, self._write(run, "model.delete_alias", name, {"alias": alias}))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        def run(conn: Connection) -> list[AliasMove]:
            model = self._model_row(conn, name)
            q = select(MOVES).where(MOVES.c.model_id == model.model_id)
            if alias:
                q = q.where(MOVES.c.alias == alias)
            return [
                AliasMove(
                    r.alias, r.from_version, r.to_version, r.actor, r.ts, r.reason, r.approval_id
                )
                for r in conn.execute(q.order_by(MOVES.c.id)).all()
            ]

        return cast(list[AliasMove], self.db.read(run))
