"""``FeatureService``: a named set of features a model consumes, as in Feast.

>>> churn_v1 = FeatureService("churn_v1", features=[stats[["trips", "rating"]], "profile:*"])
>>> store.apply([churn_v1])
>>> store.get_online_features(rows, features=churn_v1)
>>> store.get_historical_features(labels, features=store.get_feature_service("churn_v1"))

A service is applied and versioned like a feature view (it shares their namespace: a
service cannot take a feature view's name). Each reference is ``"view:feature"`` or
``"view:*"``; a feature view stands for all its features, ``view[["a", "b"]]`` for some.
A model version records the service it was trained on through its training run: the
run gets the tag ``loopstack.feature_service`` and the training set the lineage edge
``feature_service:<name>`` when ``register_as`` is used.
"""

from __future__ import annotations

from typing import Any

from loopstack.errors import Invalid
from loopstack.features._definitions import (
    FeatureView,
    FeatureViewProjection,
    OnDemandFeatureView,
    _check_name,
    _check_tags,
    _Definition,
)

__all__ = ["SERVICE_TAG", "FeatureService", "feature_refs"]

#: the run tag naming the feature service a training set was read through
SERVICE_TAG = "loopstack.feature_service"


def _refs(item: Any, name: str) -> list[str]:
    if isinstance(item, FeatureViewProjection):
        return [f"{item.view}:{f}" for f in item.features]
    if isinstance(item, FeatureView | OnDemandFeatureView):
        return [f"{item.name}:{f}" for f in item.feature_names]
    if isinstance(item, str) and item.count(":") == 1 and all(item.split(":")):
        return [item]
    raise Invalid(
        f"the features of feature service {name!r} must be 'view:feature' strings, feature "
        f"views, or view[['feature', ...]] projections; got {item!r} instead",
        field="features",
    )


class FeatureService(_Definition):
    """A named, versioned list of feature references (``"view:feature"``)."""

    def __init__(
        self,
        name: str,
        features: list[Any],
        *,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = _check_name(name, "feature service")
        if isinstance(features, str) or not isinstance(features, list | tuple) or not features:
            raise Invalid(
                f"feature service {name!r} needs a non-empty list of features; got {features!r}",
                field="features",
            )
        refs: list[str] = []
        for item in features:
            for ref in _refs(item, name):
                if ref not in refs:
                    refs.append(ref)
        self.features = refs
        self.description, self.owner, self.tags = str(description), str(owner), _check_tags(tags)

    @property
    def uri(self) -> str:
        """``feature_service:<name>``, its node in the lineage graph."""
        return f"feature_service:{self.name}"

    @property
    def view_names(self) -> list[str]:
        return list(dict.fromkeys(r.split(":")[0] for r in self.features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "feature_service",
            "name": self.name,
            "features": list(self.features),
            "description": self.description,
            "owner": self.owner,
            "tags": self.tags,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureService:
        return cls(
            data["name"],
            list(data.get("features") or []),
            description=data.get("description", ""),
            owner=data.get("owner", ""),
            tags=data.get("tags"),
        )


def feature_refs(features: Any) -> tuple[list[str], FeatureService | None]:
    """The references ``features`` names (a list, or a FeatureService) and the service."""
    if isinstance(features, FeatureService):
        return list(features.features), features
    if not isinstance(features, list | tuple) or not all(isinstance(f, str) for f in features):
        from loopstack.errors import Invalid, excerpt

        raise Invalid(
            "features must be a list of 'view:feature' references or a FeatureService; got "
            f"{excerpt(features)}",
            field="features",
        )
    return list(features), None
