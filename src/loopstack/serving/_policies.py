"""Routing policies as pure functions: which arm answers a request, which get copies.

``route(deployment, key, rng, bandit)`` reads nothing and writes nothing: the
deployment (its policy, arms and weights), the request's routing key, a random
source and, for a bandit, its learned state are all it needs, so replicas agree on
a keyed request without talking to each other, and tests drive it with a seed.

- single / blue-green: the primary answers (a standby waits, weight 0).
- canary / A/B: a weighted split. With a routing key the choice is a hash of the
  key, not a draw: the same key always reaches the same arm, and raising a canary
  from 5% to 10% keeps the first 5% where they were (the canary takes the low end).
- shadow: the primary answers; every shadow arm gets a copy (``Route.shadows``).
- bandit: Thompson sampling (a draw from each arm's Beta(alpha, beta), the highest
  wins) or epsilon-greedy (a random arm with probability epsilon, else the best
  mean reward), over the state ``DeploymentStore.bandit_state`` returns.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loopstack.errors import Conflict
from loopstack.serving._deployments import Arm, ArmStats, Deployment

__all__ = ["Route", "key_bucket", "route", "thompson_choice", "epsilon_greedy_choice"]

_RNG = random.Random()
_SCALE = float(2**64)


@dataclass(frozen=True)
class Route:
    """Where one request goes: ``arm`` answers it, each of ``shadows`` gets a copy."""

    arm: Arm
    shadows: tuple[Arm, ...] = ()


def key_bucket(deployment: str, key: str) -> float:
    """A routing key's place in [0, 100) for ``deployment``: the same key, the same place.

    >>> key_bucket("churn-api", "customer-42") == key_bucket("churn-api", "customer-42")
    True
    """
    digest = hashlib.blake2b(f"{deployment}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE * 100.0


def _weighted(arms: Sequence[Arm], point: float) -> Arm:
    """The arm whose stretch of [0, 100) holds ``point`` (weights laid end to end)."""
    total = sum(a.weight for a in arms)
    edge = 0.0
    scaled = point * total / 100.0
    for a in arms:
        edge += a.weight
        if scaled < edge:
            return a
    return arms[-1]


def thompson_choice(arms: Sequence[Arm], state: Mapping[str, ArmStats], rng: random.Random) -> Arm:
    """The arm whose draw from its Beta posterior is highest (unseen arms: Beta(1, 1))."""
    best, best_draw = arms[0], -1.0
    for a in arms:
        s = state.get(a.name)
        alpha, beta = (s.alpha, s.beta) if s is not None else (1.0, 1.0)
        draw = rng.betavariate(alpha, beta)
        if draw > best_draw:
            best, best_draw = a, draw
    return best


def epsilon_greedy_choice(
    arms: Sequence[Arm], state: Mapping[str, ArmStats], rng: random.Random, epsilon: float
) -> Arm:
    """A random arm with probability ``epsilon``, else the best mean reward (an arm never
    tried first; ties broken at random)."""
    if rng.random() < epsilon:
        return arms[rng.randrange(len(arms))]
    untried = [a for a in arms if (s := state.get(a.name)) is None or s.pulls == 0]
    if untried:
        return untried[rng.randrange(len(untried))]
    means = {a.name: state[a.name].mean_reward for a in arms}
    top = max(means.values())
    best = [a for a in arms if means[a.name] == top]
    return best[rng.randrange(len(best))]


def route(
    deployment: Deployment,
    key: str | None = None,
    rng: random.Random | None = None,
    bandit: Mapping[str, ArmStats] | None = None,
) -> Route:
    """The arm that answers a request to ``deployment`` and the shadow arms to copy it to.

    ``key`` (optional) makes canary and A/B choices sticky per key; ``rng`` is the random
    source of keyless requests and bandits; ``bandit`` the learned state of a bandit's
    arms (``DeploymentStore.bandit_state``; missing arms count as untried).

    >>> r = route(d, key="customer-42")
    >>> r.arm.model_ref, [s.model_ref for s in r.shadows]
    ('churn/3', ['churn/4'])
    """
    rng = rng or _RNG
    shadows = tuple(a for a in deployment.arms if a.role == "shadow")
    serving = [a for a in deployment.arms if a.serves]
    if not serving:
        raise Conflict(f"deployment {deployment.name!r} has no arm that answers requests")
    if deployment.policy == "bandit":
        state = bandit or {}
        if deployment.options.get("strategy", "thompson") == "epsilon":
            eps = float(deployment.options.get("epsilon", 0.1))
            return Route(epsilon_greedy_choice(serving, state, rng, eps), shadows)
        return Route(thompson_choice(serving, state, rng), shadows)
    if len(serving) == 1:
        return Route(serving[0], shadows)
    # canaries take the low end of [0, 100): a raised weight keeps the keys it had
    ordered = sorted(serving, key=lambda a: a.role != "canary")
    point = key_bucket(deployment.name, key) if key is not None else rng.random() * 100.0
    return Route(_weighted(ordered, point), shadows)
