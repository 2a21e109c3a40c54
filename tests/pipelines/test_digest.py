"""The cache key's parts: code, environment, params."""

from __future__ import annotations

import pytest

from loopstack.errors import Invalid
from loopstack.pipelines._digest import cache_key, canonical_json, code_digest, environment
from tests.pipelines import flows


def helper(x: int) -> int:
    return x + 1


def uses_helper(x: int) -> int:
    return helper(x) * 2


def test_code_digest_covers_same_module_functions_it_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = code_digest(uses_helper)
    from loopstack.pipelines import _digest

    real = _digest._source
    monkeypatch.setattr(_digest, "_source", lambda fn: "changed" if fn is helper else real(fn))
    assert code_digest(uses_helper) != before
    monkeypatch.setattr(_digest, "_source", real)
    assert code_digest(uses_helper) == before


def test_decorator_options_do_not_change_the_code_digest() -> None:
    import loopstack as ls

    def plain(x: int) -> int:
        return x

    decorated = ls.step(retries=3)(plain)
    assert code_digest(decorated.fn) == code_digest(plain)


def test_environment_names_the_distributions_a_step_refers_to() -> None:
    env = environment(flows.load.fn)
    assert set(env) == {"python", "packages"}
    assert "pandas" in env["packages"] and "numpy" in env["packages"]
    assert "pandas" not in environment(flows.total.fn)["packages"]


def test_the_cache_key_changes_with_each_part() -> None:
    base = cache_key("code", {"df": "a" * 64}, {"lr": 0.1}, {"python": "3.11", "packages": {}})
    assert base == cache_key(
        "code", {"df": "a" * 64}, {"lr": 0.1}, {"python": "3.11", "packages": {}}
    )
    assert base != cache_key(
        "code2", {"df": "a" * 64}, {"lr": 0.1}, {"python": "3.11", "packages": {}}
    )
    assert base != cache_key(
        "code", {"df": "b" * 64}, {"lr": 0.1}, {"python": "3.11", "packages": {}}
    )
    assert base != cache_key(
        "code", {"df": "a" * 64}, {"lr": 0.2}, {"python": "3.11", "packages": {}}
    )
    assert base != cache_key(
        "code", {"df": "a" * 64}, {"lr": 0.1}, {"python": "3.11", "packages": {"x": "1"}}
    )


def test_canonical_json_refuses_what_is_not_json() -> None:
    assert canonical_json({"b": [1, 2.0], "a": None}) == '{"a":null,"b":[1,2.0]}'
    with pytest.raises(Invalid, match="not a str"):
        canonical_json({1: 2})
    with pytest.raises(Invalid, match="is not JSON"):
        canonical_json({"a": {1, 2}})
