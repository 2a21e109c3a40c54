"""The serving runtime: one load per package digest, readiness after warm-up, and a
moved alias (or a changed endpoint list) picked up without a restart."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.registry import registry
from loopstack.serving import EndpointSpec, ServingRuntime, endpoint_name_for
from tests.serving.conftest import log_models


def test_endpoints_on_one_version_share_one_load() -> None:
    log_models()
    runtime = ServingRuntime(
        [
            EndpointSpec("a", "models:/iris@champion"),
            EndpointSpec("b", "models:/iris/1"),
            EndpointSpec("c", "models:/reg/1"),
        ]
    )
    assert not runtime.ready and {e.state for e in runtime.endpoints} == {"loading"}
    runtime.start().join(60)
    assert runtime.ready
    a, b, c = runtime.endpoints
    assert a.model().model is b.model().model and c.model().model is not a.model().model
    assert len(runtime.cache) == 2


def test_a_moved_alias_is_served_after_refresh() -> None:
    X, _, _ = log_models()
    other = LogisticRegression(C=0.01, max_iter=300).fit(X, (X.iloc[:, 0] > 5.8).astype(int))
    with ls.start_run(experiment="serving") as run:
        run.log_model(other, name="iris", artifact_path="iris2", sample_input=X.head(5))
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    assert runtime.get("iris").model().version_label == "1"
    assert runtime.refresh() == []
    registry().set_alias("iris", "champion", 2, force=True)
    assert runtime.refresh() == ["iris"]
    served = runtime.get("iris").model()
    assert served.version_label == "2"
    np.testing.assert_array_equal(served.predict(X.head(10))["predict"], other.predict(X.head(10)))
    assert len(runtime.cache) == 1  # version 1 is forgotten once nothing serves it


def test_apply_adds_changes_and_removes_endpoints() -> None:
    log_models()
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris/1")])
    runtime.load_all()
    runtime.apply(
        [EndpointSpec("iris", "models:/iris@champion"), EndpointSpec("reg", "models:/reg/1")]
    )
    assert [e.name for e in runtime.endpoints] == ["iris", "reg"] and runtime.ready
    runtime.apply([EndpointSpec("reg", "models:/reg/1")])
    assert [e.name for e in runtime.endpoints] == ["reg"] and len(runtime.cache) == 1
    failed = runtime.apply([EndpointSpec("reg", "models:/reg/5")])  # no such version
    assert list(failed) == ["reg"] and "5" in failed["reg"]
    assert runtime.get("reg").model().version_label == "1"  # the old one still answers


def test_default_endpoint_names() -> None:
    assert endpoint_name_for("models:/churn@champion") == "churn"
    assert endpoint_name_for("models:/churn/3") == "churn"
    assert endpoint_name_for("runs:/abc123/model") == "model"


def test_a_replica_loads_through_a_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A serving replica that knows only the server's URL resolves and loads through it."""
    from loopstack.server import create_app
    from loopstack.store.remote import close_shared
    from tests.conftest import ThreadedServer

    with ThreadedServer(create_app()) as server:
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server.url)
        try:
            X, clf, _ = log_models()
            runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
            runtime.load_all()
            assert runtime.ready, runtime.get("iris").error
            served = runtime.get("iris").model()
            assert served.version_label == "1"
            np.testing.assert_array_equal(
                served.predict(X.head(7))["predict"], clf.predict(X.head(7))
            )
        finally:
            close_shared(server.url)


def test_a_serving_process_freezes_its_models_and_a_swap_lets_the_old_one_go() -> None:
    import gc
    import weakref

    X, _, _ = log_models()
    other = LogisticRegression(C=0.01, max_iter=300).fit(X, (X.iloc[:, 0] > 5.8).astype(int))
    with ls.start_run(experiment="serving") as run:
        run.log_model(other, name="iris", artifact_path="iris2", sample_input=X.head(5))
    thresholds = gc.get_threshold()
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.settle_heap = True
    try:
        gc.unfreeze()
        runtime.load_all()
        assert gc.get_freeze_count() > 0  # the loaded model is out of the collector's walks
        assert gc.get_threshold() == ls.serving._runtime.GC_THRESHOLDS
        first = weakref.ref(runtime.get("iris").model().model)
        registry().set_alias("iris", "champion", 2, force=True)
        assert runtime.refresh() == ["iris"]
        assert first() is None  # frozen or not, the swapped-out model is freed
        assert runtime.get("iris").model().version_label == "2"
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
