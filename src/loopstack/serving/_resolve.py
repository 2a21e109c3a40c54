"""Which model version an arm serves now: its alias followed through the registry.

An arm names a model by alias or number; an alias moves, and a replica follows it. On
a production endpoint it follows only to a version that is approved (its approval
state, or a protected alias, which moves only through an approval); otherwise the arm
keeps serving the version checked when its revision was made.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from loopstack.serving._deployments import Arm, Deployment, is_version_number

if TYPE_CHECKING:
    from loopstack.registry import ModelStore, ModelVersion

__all__ = ["resolve_arm"]


def resolve_arm(
    registry: ModelStore,
    deployment: Deployment,
    arm: Arm,
    *,
    protected: Collection[str] = ("production",),
) -> ModelVersion:
    """The model version ``arm`` of ``deployment`` serves now.

    A version number is itself; an alias is followed as it moves, except on a
    production endpoint to a version that is neither approved nor behind a
    ``protected`` alias: then the version its revision checked stays.

    >>> resolve_arm(ls.get_registry(), d, d.arms[0]).version
    3
    """
    if is_version_number(arm.ref):
        return registry.get_model_version(arm.model, int(arm.ref))
    live = registry.get_version_by_alias(arm.model, arm.ref)
    if (
        deployment.stage != "production"
        or arm.version is None
        or live.version == arm.version
        or live.approval_state == "approved"
        or arm.ref in protected
    ):
        return live
    return registry.get_model_version(arm.model, arm.version)
