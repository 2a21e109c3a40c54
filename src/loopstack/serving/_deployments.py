"""Deployments: an endpoint's stored, audited routing of traffic to model versions.

A ``Deployment`` names its arms (a model by alias or version number, a weight, a role)
and a policy; every change makes a new revision, and every revision is kept, so a
rollback restores one exactly. ``DeploymentStore`` is the interface; SQL (direct) and
REST (through a server) implement it, chosen in ``deployments()``.
"""

from __future__ import annotations

import abc
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from loopstack.errors import Invalid

__all__ = [
    "POLICIES",
    "ROLES",
    "SERVING_OPTIONS",
    "STAGES",
    "STRATEGIES",
    "Arm",
    "ArmStats",
    "Deployment",
    "DeploymentRevision",
    "DeploymentStore",
    "is_version_number",
    "check_arm_names",
    "merged_serving_options",
    "parse_model_ref",
    "serving_options",
    "validate_arms",
    "validate_deployment_name",
    "validate_serving_options",
]

#: single: one primary; blue-green: a primary and the previous one kept warm (standby);
#: canary: a primary and a canary on a weight; shadow: a primary and copies to shadows;
#: ab: a weighted split over arms; bandit: arms chosen by what their rewards taught
POLICIES = ("single", "blue-green", "canary", "shadow", "ab", "bandit")
#: an arm's part: answers (primary, canary, arm), gets copies (shadow), or waits (standby)
ROLES = ("primary", "canary", "shadow", "arm", "standby")
STAGES = ("staging", "production")
STRATEGIES = ("thompson", "epsilon")

_VERSION_RE = re.compile(r"^[1-9][0-9]{0,8}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,127}$")
_ARM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,63}$")


def validate_deployment_name(name: Any) -> str:
    """``name`` if it is a valid endpoint name, else ``Invalid`` saying what is allowed."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise Invalid(
            "a deployment name must start with a letter or digit and contain only letters, "
            f"digits, '_', '-' and '.' (at most 128); got {name!r} instead",
            field="name",
        )
    return name


def is_version_number(ref: str) -> bool:
    """Does ``ref`` name a version by number (``3``), not an alias?"""
    return bool(_VERSION_RE.match(ref))


def parse_model_ref(text: Any) -> tuple[str, str]:
    """``(model, ref)`` from ``churn@champion`` (an alias) or ``churn/3`` (a version).

    >>> parse_model_ref("churn@champion"), parse_model_ref("churn/3")
    (('churn', 'champion'), ('churn', '3'))
    """
    if isinstance(text, str):
        for sep in ("@", "/"):
            model, found, ref = text.rpartition(sep)
            if found and model and ref:
                if sep == "/" and not is_version_number(ref):
                    break
                return model, ref
    raise Invalid(
        "a model must be named as MODEL@ALIAS (churn@champion) or MODEL/VERSION (churn/3); "
        f"got {text!r} instead",
        field="model",
    )


def check_arm_names(arms: list[Arm]) -> None:
    """Refuse (``Invalid``) an arm whose name breaks the rule, naming it."""
    for a in arms:
        if not isinstance(a.name, str) or not _ARM_RE.match(a.name):
            raise Invalid(
                "an arm name must start with a letter or digit and contain only letters, "
                f"digits, '_', '-' and '.' (at most 64); got {a.name!r} instead",
                field="arms",
            )


@dataclass
class Arm:
    """One model version an endpoint routes to.

    ``ref`` is an alias (followed as it moves: the runtime resolves it) or a version
    number; ``version`` is what it resolved to when the revision was made. ``weight`` is
    a share of the traffic in percent (a canary of 5 takes 5%).
    """

    name: str
    model: str
    ref: str
    weight: float = 100.0
    role: str = "primary"
    version: int | None = None

    @property
    def model_ref(self) -> str:
        """``model@alias`` or ``model/version``, as the CLI takes it."""
        return (
            f"{self.model}/{self.ref}"
            if is_version_number(self.ref)
            else f"{self.model}@{self.ref}"
        )

    @property
    def serves(self) -> bool:
        """Does this arm answer requests (not a shadow's copy, not a standby)?"""
        return self.role in ("primary", "canary", "arm")

    def to_dict(self) -> dict[str, Any]:
        """The arm as plain JSON-able values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, got: dict[str, Any]) -> Arm:
        """The arm a ``to_dict`` made (or a request body held); unknown keys are refused."""
        unknown = sorted(set(got) - {"name", "model", "ref", "weight", "role", "version"})
        if unknown:
            raise Invalid(f"an arm has no field(s) {unknown}", field="arms")
        try:
            return cls(
                name=got["name"],
                model=got["model"],
                ref=str(got["ref"]),
                weight=float(got.get("weight", 100.0)),
                role=got.get("role", "primary"),
                version=got.get("version"),
            )
        except KeyError as exc:
            raise Invalid(
                f"an arm needs {exc.args[0]!r}; got {sorted(got)}", field="arms"
            ) from None
        except (TypeError, ValueError):
            raise Invalid(
                f"an arm's weight must be a number; got {got.get('weight')!r}", field="arms"
            ) from None


@dataclass
class Deployment:
    """An endpoint's routing at its latest revision."""

    name: str
    project_id: int
    policy: str
    arms: list[Arm]
    stage: str
    revision: int
    created_by: str
    created_at: int
    updated_by: str
    updated_at: int
    #: policy options: a bandit's ``strategy`` and ``epsilon``; ``enrichment`` (any policy:
    #: requests carry entity keys, the features come from the online store)
    options: dict[str, Any] = field(default_factory=dict)

    def arm(self, name: str) -> Arm:
        """The arm called ``name``; ``Invalid`` naming the arms there are."""
        for a in self.arms:
            if a.name == name:
                return a
        raise Invalid(
            f"deployment {self.name!r} has no arm {name!r}; its arms are "
            f"{[a.name for a in self.arms]}",
            field="arm",
        )

    @property
    def primary(self) -> Arm | None:
        """The arm that answers by default (None under an A/B split or a bandit)."""
        return next((a for a in self.arms if a.role == "primary"), None)

    def to_dict(self) -> dict[str, Any]:
        """The deployment as plain JSON-able values."""
        out = asdict(self)
        out["arms"] = [a.to_dict() for a in self.arms]
        return out

    @classmethod
    def from_dict(cls, got: dict[str, Any]) -> Deployment:
        """The deployment a ``to_dict`` made."""
        return cls(**{**got, "arms": [Arm.from_dict(a) for a in got["arms"]]})


@dataclass(frozen=True)
class DeploymentRevision:
    """One revision of a deployment as it was made: by which change, who, when."""

    revision: int
    action: str
    policy: str
    stage: str
    arms: list[Arm]
    options: dict[str, Any]
    actor: str
    ts: int
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The revision as plain JSON-able values."""
        out = asdict(self)
        out["arms"] = [a.to_dict() for a in self.arms]
        return out

    @classmethod
    def from_dict(cls, got: dict[str, Any]) -> DeploymentRevision:
        """The revision a ``to_dict`` made."""
        return cls(**{**got, "arms": [Arm.from_dict(a) for a in got["arms"]]})


@dataclass(frozen=True)
class ArmStats:
    """What a bandit learned of one arm: pulls, rewards, and its Beta posterior."""

    arm: str
    pulls: int
    reward_sum: float
    successes: float
    failures: float

    @property
    def alpha(self) -> float:
        """The Beta posterior's alpha (a uniform prior: 1 + successes)."""
        return 1.0 + self.successes

    @property
    def beta(self) -> float:
        """The Beta posterior's beta (1 + failures)."""
        return 1.0 + self.failures

    @property
    def mean_reward(self) -> float:
        """The mean reward so far (0 before the first)."""
        return self.reward_sum / self.pulls if self.pulls else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The stats as plain values, with the derived ones."""
        return {**asdict(self), "alpha": self.alpha, "beta": self.beta, "mean": self.mean_reward}

    @classmethod
    def from_dict(cls, got: dict[str, Any]) -> ArmStats:
        """The stats a ``to_dict`` made."""
        return cls(
            got["arm"], int(got["pulls"]), got["reward_sum"], got["successes"], got["failures"]
        )


_SUM_TOLERANCE = 1e-6


#: serving options a deployment may carry (any policy): name -> (kind, least, most)
SERVING_OPTIONS: dict[str, tuple[type, float, float]] = {
    "max_batch_size": (int, 1, 4096),
    "batch_latency_ms": (float, 0, 10_000),
    "max_queue": (int, 1, 1_000_000),
}


def validate_serving_options(options: dict[str, Any]) -> None:
    """Refuse (``Invalid``) a serving option (``SERVING_OPTIONS``) of the wrong kind or
    out of its range, naming it, its range and what came."""
    for key, (kind, least, most) in SERVING_OPTIONS.items():
        if key not in options:
            continue
        value = options[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole if kind is int else numeric) or not least <= value <= most:
            what = "an integer" if kind is int else "a number"
            raise Invalid(
                f"the deployment option {key!r} must be {what} from {least:g} to {most:g}; "
                f"got {value!r}",
                field=key,
            )


def serving_options(options: dict[str, Any]) -> dict[str, Any]:
    """The ``SERVING_OPTIONS`` among a deployment's options (what a new revision keeps)."""
    return {k: v for k, v in options.items() if k in SERVING_OPTIONS}


def merged_serving_options(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``current`` options with the serving option ``changes`` applied (None removes
    one); ``Invalid`` for a key that is no serving option, or a bad value."""
    if not isinstance(changes, dict) or not changes:
        raise Invalid(
            f"options to set are a non-empty object of {sorted(SERVING_OPTIONS)}; got {changes!r}",
            field="options",
        )
    unknown = sorted(set(changes) - set(SERVING_OPTIONS))
    if unknown:
        raise Invalid(
            f"unknown serving option(s) {unknown}; the options are {sorted(SERVING_OPTIONS)}",
            field="options",
        )
    merged = {**current, **changes}
    merged = {k: v for k, v in merged.items() if v is not None}
    validate_serving_options(merged)
    return merged


def validate_arms(policy: str, arms: list[Arm], options: dict[str, Any]) -> None:
    """Refuse (``Invalid``) a policy, arms or options that break a rule, saying which.

    ``options["enrichment"]`` (any policy) configures feature enrichment; see
    ``loopstack.serving._enrich_config``.
    """
    check_arm_names(arms)
    if "enrichment" in options:
        from loopstack.serving._enrich_config import EnrichmentConfig

        EnrichmentConfig.parse(options["enrichment"])
    validate_serving_options(options)
    if policy not in POLICIES:
        raise Invalid(f"a policy is one of {list(POLICIES)}; got {policy!r}", field="policy")
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise Invalid(f"arm names must be unique; {dupes} appear more than once", field="arms")
    for a in arms:
        if a.weight < 0 or a.weight > 100 or a.weight != a.weight:
            raise Invalid(
                f"a weight is a percentage from 0 to 100; arm {a.name!r} has {a.weight}",
                field="weight",
            )
    if policy == "bandit":
        if len(arms) < 2:
            raise Invalid(f"a bandit needs at least two arms; got {len(arms)}", field="arms")
        if options.get("strategy") not in STRATEGIES:
            raise Invalid(
                f"a bandit's strategy is one of {list(STRATEGIES)}; got "
                f"{options.get('strategy')!r}",
                field="strategy",
            )
        eps = options.get("epsilon")
        if not isinstance(eps, (int, float)) or not 0 <= eps <= 1:
            raise Invalid(f"epsilon must be from 0 to 1; got {eps!r}", field="epsilon")
        return
    serving = [a for a in arms if a.serves]
    total = sum(a.weight for a in serving)
    if not serving or abs(total - 100.0) > _SUM_TOLERANCE:
        shown = ", ".join(f"{a.name}={a.weight:g}" for a in serving) or "none"
        raise Invalid(
            f"the weights of the arms that answer must sum to 100; got {total:g} ({shown})",
            field="weight",
        )


class DeploymentStore(abc.ABC):
    """Stored, audited deployments of one project.

    Models are named ``model@alias`` or ``model/version``. Putting a version on a
    production endpoint needs it approved in the registry (``approval_state`` approved,
    or the target of a protected alias such as ``production``) unless ``force`` (an
    admin's override) is given.
    """

    @abc.abstractmethod
    def create(
        self, name: str, model: str, *, stage: str = "staging", force: bool = False
    ) -> Deployment:
        """A new endpoint answering with ``model`` alone (policy ``single``).

        >>> deployments().create("churn-api", "churn@champion")
        """

    @abc.abstractmethod
    def get(self, name: str) -> Deployment:
        """The deployment's latest revision; ``NotFound`` if there is none by that name."""

    @abc.abstractmethod
    def list_deployments(self) -> list[Deployment]:
        """Every deployment of the project, by name."""

    @abc.abstractmethod
    def revisions(self) -> dict[str, int]:
        """Each deployment's current revision: what a serving replica polls (cheap)."""

    @abc.abstractmethod
    def set(self, name: str, model: str, *, force: bool = False) -> Deployment:
        """Blue-green switch: ``model`` becomes the primary at once; the previous primary
        stays listed as a warm standby (weight 0) for an instant rollback."""

    @abc.abstractmethod
    def canary(self, name: str, model: str, *, weight: float, force: bool = False) -> Deployment:
        """Send ``weight`` percent of the traffic to ``model``, sticky per routing key."""

    @abc.abstractmethod
    def shadow(self, name: str, model: str, *, force: bool = False) -> Deployment:
        """Copy the traffic to ``model`` off the critical path; the primary still answers."""

    @abc.abstractmethod
    def ab(
        self, name: str, arms: dict[str, tuple[str, float]], *, force: bool = False
    ) -> Deployment:
        """A weighted split: ``{"a": ("churn/3", 50), "b": ("churn/4", 50)}``; the weights
        sum to 100."""

    @abc.abstractmethod
    def bandit(
        self,
        name: str,
        arms: dict[str, str],
        *,
        strategy: str = "thompson",
        epsilon: float = 0.1,
        force: bool = False,
    ) -> Deployment:
        """Arms chosen by Thompson sampling (Beta-Bernoulli) or epsilon-greedy over the
        rewards ``record_reward`` feeds; the learned state starts afresh."""

    @abc.abstractmethod
    def promote(self, name: str, *, arm: str | None = None, force: bool = False) -> Deployment:
        """Make the challenger the primary: the canary or shadow, or the named arm of an
        A/B split or bandit (a bandit's best arm by default); the old primary stands by."""

    @abc.abstractmethod
    def rollback(self, name: str, *, to: int | None = None, force: bool = False) -> Deployment:
        """Restore revision ``to`` (default: the one before the latest) exactly, as a new
        revision."""

    @abc.abstractmethod
    def set_enrichment(self, name: str, enrichment: dict[str, Any] | None) -> Deployment:
        """Make the endpoint read its models' features from the online store, as
        ``enrichment`` says (see ``loopstack.serving._enrich_config``), or, with None,
        stop; a new revision with the same arms. Later changes keep the setting.

        >>> deployments().set_enrichment("churn-api", {"mode": "degraded",
        ...                                            "defaults": {"trips": 0}})
        """

    @abc.abstractmethod
    def history(self, name: str) -> list[DeploymentRevision]:
        """Every revision, oldest first."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove the endpoint (its revisions and bandit state go with it; the audit
        log keeps every change)."""

    @abc.abstractmethod
    def configure(self, name: str, options: dict[str, Any], *, force: bool = False) -> Deployment:
        """Set serving options (``SERVING_OPTIONS``: ``max_batch_size``,
        ``batch_latency_ms``, ``max_queue``) as a new revision with the same arms; a
        value None removes the option. Later policy changes keep them; a rollback
        restores a revision's options exactly.

        >>> deployments().configure("churn-api", {"max_batch_size": 64})
        """

    @abc.abstractmethod
    def record_reward(self, name: str, arm: str, reward: float) -> ArmStats:
        """Feed a bandit arm a reward in [0, 1] (1: success); its learned state persists."""

    @abc.abstractmethod
    def bandit_state(self, name: str) -> dict[str, ArmStats]:
        """What the deployment's arms learned so far (every arm, zeros before a reward)."""
