"""One filter language for every search: the same text means the same thing everywhere."""

from __future__ import annotations

import pytest

from loopstack.errors import Invalid
from loopstack.registry._search import MODEL_FIELDS, VERSION_FIELDS, parse_registry_filter
from loopstack.tracking._experiment_search import parse_experiment_filter, sort_experiments
from loopstack.tracking._filter import Clause
from loopstack.tracking._search import parse_filter, parse_order_by


def test_the_same_tag_clause_parses_alike_for_runs_experiments_and_models() -> None:
    text = "tags.team = 'risk''s' AND tags.`the owner` <> \"ana\""
    expected = [Clause("tag", "team", "=", "risk's"), Clause("tag", "the owner", "!=", "ana")]
    assert parse_filter(text) == expected
    assert parse_experiment_filter(text) == expected
    assert parse_registry_filter(text, MODEL_FIELDS, "registered model") == expected


def test_numbers_are_read_as_each_field_needs() -> None:
    assert parse_filter("metrics.auc >= 9e-1") == [Clause("metric", "auc", ">=", 0.9)]
    assert parse_registry_filter("version_number > 2", VERSION_FIELDS, "model version") == [
        Clause("attribute", "version_number", ">", 2)
    ]
    with pytest.raises(Invalid, match="whole number"):
        parse_registry_filter("version_number > 2.5", VERSION_FIELDS, "model version")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.a > 1 OR metrics.b > 2", "OR is not supported"),
        ("metrics.auc > 'high'", "numeric"),
        ("params.model > 'gbm'", "takes one of"),
        ("metrics.auc >", "expected a value"),
    ],
)
def test_bad_filters_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(Invalid, match=message) as info:
        parse_filter(text)
    assert info.value.field == "filter"


@pytest.mark.parametrize("clause", ["metrics.auc sideways", "name ASC DESC", "", "ASC"])
def test_order_by_is_one_key_and_an_optional_direction(clause: str) -> None:
    with pytest.raises(Invalid, match=r"<key> \[ASC\|DESC\]"):
        parse_order_by([clause])
    with pytest.raises(Invalid, match=r"<key> \[ASC\|DESC\]"):
        sort_experiments([], [clause])


def test_order_by_directions_are_case_insensitive() -> None:
    keys = parse_order_by(["metrics.auc desc", "params.`learning rate` Asc", "start_time"])
    assert [(k.kind, k.key, k.ascending) for k in keys] == [
        ("metric", "auc", False),
        ("param", "learning rate", True),
        ("attribute", "start_time", True),
    ]
