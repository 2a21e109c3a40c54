"""A bandit's learned state over the SQL metadata store (mixed into ``SqlDeployments``).

Rewards are high-rate data, not state changes: ``record_reward`` bumps an arm's
counters with a plain UPDATE through ``Database.write_unaudited``, with no audit event
per reward (one per reward would grow the hash chain at the request rate and
serialise every reward behind its head). Making the bandit is the audited change.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select, update

from loopstack.errors import Conflict, Invalid
from loopstack.serving._deployments import Arm, ArmStats
from loopstack.store.metadata.schema import BanditArm
from loopstack.tracking._entities import now_ms

__all__ = ["BanditState"]

BS = cast(Table, BanditArm.__table__)


class BanditState:
    """Rewards in, learned state out (mixed into ``SqlDeployments``)."""

    # provided by SqlDeployments
    db: Any
    _row: Any
    _entity: Any

    @staticmethod
    def _bandit_rows(
        conn: Connection, deployment_id: int, arms: list[Arm], *, reset: bool, now: int
    ) -> None:
        if reset:
            conn.execute(delete(BS).where(BS.c.deployment_id == deployment_id))
        have = set(
            conn.execute(select(BS.c.arm).where(BS.c.deployment_id == deployment_id)).scalars()
        )
        for a in arms:
            if a.name not in have:
                conn.execute(
                    BS.insert().values(
                        deployment_id=deployment_id,
                        arm=a.name,
                        pulls=0,
                        reward_sum=0.0,
                        successes=0.0,
                        failures=0.0,
                        updated_at=now,
                    )
                )

    def record_reward(self, name: str, arm: str, reward: float) -> ArmStats:
        """Feed a bandit arm a reward in [0, 1]: a plain UPDATE of its counters, no audit
        event (rewards come at the request rate; see the module's docstring)."""
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not 0 <= reward <= 1:
            raise Invalid(f"a reward is a number from 0 to 1; got {reward!r}", field="reward")
        r = float(reward)

        def run(conn: Connection) -> ArmStats:
            row = self._row(conn, name)
            if row.policy != "bandit":
                raise Conflict(
                    f"deployment {name!r} is not a bandit (its policy is {row.policy!r}): "
                    "rewards feed a bandit's arms"
                )
            self._entity(row).arm(arm)
            conn.execute(
                update(BS)
                .where(BS.c.deployment_id == row.deployment_id, BS.c.arm == arm)
                .values(
                    pulls=BS.c.pulls + 1,
                    reward_sum=BS.c.reward_sum + r,
                    successes=BS.c.successes + r,
                    failures=BS.c.failures + (1.0 - r),
                    updated_at=now_ms(),
                )
            )
            got = conn.execute(
                select(BS).where(BS.c.deployment_id == row.deployment_id, BS.c.arm == arm)
            ).one()
            return ArmStats(got.arm, got.pulls, got.reward_sum, got.successes, got.failures)

        return cast(ArmStats, self.db.write_unaudited(run))

    def bandit_state(self, name: str) -> dict[str, ArmStats]:
        """What each arm learned so far (zeros for an arm with no reward yet)."""

        def run(conn: Connection) -> dict[str, ArmStats]:
            row = self._row(conn, name)
            arms = [a.name for a in self._entity(row).arms]
            got = {
                r.arm: ArmStats(r.arm, r.pulls, r.reward_sum, r.successes, r.failures)
                for r in conn.execute(select(BS).where(BS.c.deployment_id == row.deployment_id))
            }
            return {a: got.get(a, ArmStats(a, 0, 0.0, 0.0, 0.0)) for a in arms}

        return cast(dict[str, ArmStats], self.db.read(run))
