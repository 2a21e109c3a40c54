"""Stored results, promotion evidence, and the dataset version -> run lineage edge."""

from __future__ import annotations

import pandas as pd

import loopstack as ls
from loopstack.data import get_validation_result
from loopstack.registry import get_registry

FILES = {"model.joblib": "ab" * 32}


def test_results_are_stored_audited_and_linked(use_db: str) -> None:
    from loopstack.data import dataset_store
    from loopstack.store import audit
    from loopstack.store.metadata import open_database

    dv = ls.register_dataset("orders", pd.DataFrame({"a": [1, 2, None]}))
    suite = ls.Suite("orders-gate", [{"type": "null_rate", "column": "a", "max": 0}])
    with ls.start_run(experiment="data") as run:
        report = suite.validate(dv)
    assert report.result_id and report.dataset == "orders/1"
    stored = get_validation_result(report.result_id)
    assert stored.passed is False and stored.dataset == "orders/1"
    assert stored.results[0].observed == report.results[0].observed
    assert stored.results[0].failing_rows == [{"a": None}]
    assert stored.suite_definition == suite.to_dict()
    assert [r.result_id for r in dataset_store().list_validations(dataset="orders")] == [
        report.result_id
    ]
    assert [r.result_id for r in dataset_store().list_validations(run_id=run.run_id)] == [
        report.result_id
    ]
    events = audit.events(open_database(use_db), object_type="validation")
    assert [e["object_id"] for e in events] == [report.result_id]


def test_evidence_is_accepted_by_request_promotion(use_db: str) -> None:
    reg = get_registry(actor="alice")
    reg.create_model_version("churn", source="runs:/x/model", files=FILES)
    report = ls.Suite("gate", [{"type": "row_count", "min": 1}]).validate(pd.DataFrame({"a": [1]}))
    evidence = report.as_evidence()
    assert evidence["passed"] is True and evidence["result_id"] == report.result_id
    assert evidence["failures"] == []
    request = reg.request_promotion("churn", 1, evidence={"validation": evidence})
    assert request.evidence["validation"] == evidence


def test_log_input_of_a_dataset_version_links_it_to_the_run(use_db: str) -> None:
    dv = ls.register_dataset("orders", pd.DataFrame({"a": [1, 2, 3]}))
    with ls.start_run(experiment="train") as run:
        digest = run.log_input(dv, context="training")
    assert digest == dv.digest
    assert ls.lineage(run).upstream == ["dataset_version:orders/1"]
    down = ls.lineage(dv)
    assert down.root == "dataset_version:orders/1"
    assert down.downstream == [f"run:{run.run_id}"]
    assert ("dataset_version:orders/1", f"run:{run.run_id}", "input") in down.edges
