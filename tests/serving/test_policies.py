"""Routing policies as pure functions: splits within tolerance, sticky keys, shadows
copied, and a Thompson-sampling bandit that learns the better arm (all seeded)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

import loopstack as ls
from loopstack.serving import Arm, ArmStats, Deployment, key_bucket, route

N = 20_000


def _deployment(policy: str, arms: list[Arm], **options: object) -> Deployment:
    return Deployment("churn-api", 0, policy, arms, "staging", 1, "bob", 0, "bob", 0, options)


def _canary(weight: float) -> Deployment:
    return _deployment(
        "canary",
        [
            Arm("blue", "churn", "3", 100 - weight, "primary", 3),
            Arm("canary", "churn", "4", weight, "canary", 4),
        ],
    )


def test_a_five_percent_canary_takes_about_five_percent_of_keys_each_always_the_same() -> None:
    rng = random.Random(7)
    keys = [f"customer-{rng.getrandbits(64):x}" for _ in range(N)]
    d = _canary(5)
    first = {k: route(d, key=k).arm.name for k in keys}
    share = sum(v == "canary" for v in first.values()) / N
    assert 0.045 <= share <= 0.055, share  # 5% +- 10 standard deviations of 0.15%
    # sticky: whatever the random source, a key reaches the same arm every time
    other = random.Random(99)
    assert all(route(d, key=k, rng=other).arm.name == first[k] for k in keys[:2000])
    # raising the canary to 10% keeps every key it had
    wider = _canary(10)
    assert all(route(wider, key=k).arm.name == "canary" for k, v in first.items() if v == "canary")
    assert 0.09 <= sum(route(wider, key=k).arm.name == "canary" for k in keys) / N <= 0.11
    assert key_bucket("churn-api", "x") == key_bucket("churn-api", "x")
    assert 0 <= key_bucket("churn-api", "x") < 100


def test_keyless_requests_split_by_the_random_source() -> None:
    rng = random.Random(1)
    got = Counter(route(_canary(5), rng=rng).arm.name for _ in range(N))
    assert 0.045 <= got["canary"] / N <= 0.055


def test_an_ab_split_is_weighted_within_tolerance() -> None:
    d = _deployment(
        "ab",
        [
            Arm("a", "churn", "3", 20, "arm", 3),
            Arm("b", "churn", "4", 30, "arm", 4),
            Arm("c", "churn", "5", 50, "arm", 5),
        ],
    )
    rng = random.Random(3)
    keyed = Counter(route(d, key=f"k{i}").arm.name for i in range(N))
    keyless = Counter(route(d, rng=rng).arm.name for _ in range(N))
    for got in (keyed, keyless):
        for arm, share in (("a", 0.2), ("b", 0.3), ("c", 0.5)):
            assert abs(got[arm] / N - share) < 0.02, (arm, got)


def test_single_blue_green_and_shadow() -> None:
    blue_green = _deployment(
        "blue-green",
        [Arm("green", "churn", "4", 100, "primary", 4), Arm("blue", "churn", "3", 0, "standby", 3)],
    )
    # the standby never answers: it is kept warm for the rollback only
    assert {route(blue_green, key=f"k{i}").arm.name for i in range(500)} == {"green"}
    shadow = _deployment(
        "shadow",
        [Arm("blue", "churn", "3", 100, "primary", 3), Arm("shadow", "churn", "4", 0, "shadow", 4)],
    )
    r = route(shadow, key="k")
    assert r.arm.name == "blue" and [s.name for s in r.shadows] == ["shadow"]
    assert route(blue_green).shadows == ()
    nothing = _deployment("shadow", [Arm("s", "churn", "4", 0, "shadow", 4)])
    with pytest.raises(ls.Conflict, match="has no arm that answers requests"):
        route(nothing)


def _simulate(strategy: str, seed: int, rounds: int = 2000) -> Counter[str]:
    """A Bernoulli environment: arm a pays 30% of the time, arm b 60%."""
    rng = random.Random(seed)
    payoff = {"a": 0.3, "b": 0.6}
    d = _deployment(
        "bandit",
        [Arm("a", "churn", "3", 50, "arm", 3), Arm("b", "churn", "4", 50, "arm", 4)],
        strategy=strategy,
        epsilon=0.1,
    )
    state = {a: ArmStats(a, 0, 0.0, 0.0, 0.0) for a in payoff}
    chosen: Counter[str] = Counter()
    for i in range(rounds):
        arm = route(d, rng=rng, bandit=state).arm.name
        reward = 1.0 if rng.random() < payoff[arm] else 0.0
        s = state[arm]
        state[arm] = ArmStats(
            arm, s.pulls + 1, s.reward_sum + reward, s.successes + reward, s.failures + 1 - reward
        )
        if i >= rounds // 2:
            chosen[arm] += 1
    return chosen


@pytest.mark.parametrize("strategy", ["thompson", "epsilon"])
def test_a_bandit_converges_to_the_better_arm(strategy: str) -> None:
    for seed in (0, 1, 2):
        late = _simulate(strategy, seed)
        assert late["b"] / sum(late.values()) > 0.85, (strategy, seed, late)


def test_thompson_sampling_explores_before_it_knows() -> None:
    d = _deployment(
        "bandit",
        [Arm("a", "churn", "3", 50, "arm", 3), Arm("b", "churn", "4", 50, "arm", 4)],
        strategy="thompson",
    )
    rng = random.Random(5)
    got = Counter(route(d, rng=rng).arm.name for _ in range(4000))  # no state: Beta(1, 1)
    assert 0.45 < got["a"] / 4000 < 0.55


def test_routing_loads_no_database_or_web_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, loopstack.serving as s; s.route; s.Deployment; "
        "print(','.join(m for m in ('sqlalchemy', 'httpx', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_public_names_resolve() -> None:
    import loopstack.serving as serving

    assert len(set(serving.__all__)) == len(serving.__all__)
    assert all(getattr(serving, name) is not None for name in serving.__all__)
