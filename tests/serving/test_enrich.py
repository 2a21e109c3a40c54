"""Feature enrichment: requests with only entity keys, answered with the model's features
read from a real online store (SQLite, and Redis through LOOPSTACK_TEST_REDIS_URL), with
stale values, a store that is down, and the circuit breaker around it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import loopstack as ls
from loopstack.errors import Invalid
from loopstack.features import (
    DataFrameSource,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnDemandFeatureView,
    RequestSource,
)
from loopstack.registry import TRAINING_SET_TAG, registry
from loopstack.server import create_serving_app
from loopstack.serving import (
    BreakerConfig,
    CircuitBreaker,
    DeploymentSource,
    EndpointSpec,
    EnrichmentConfig,
    ServingRuntime,
    deployments,
    training_features,
)
from tests.conftest import ThreadedServer, free_port

NOW = datetime.now(UTC).replace(microsecond=0)
COLUMNS = ["conv_rate", "trips", "boost"]
REFS = ["driver_stats:conv_rate", "driver_stats:trips", "boosted:boost"]
DEFAULTS = {"conv_rate": 0.5, "trips": 7, "boost": 1.25}
DRIVERS = [1, 2, 3, 4, 5, 6]
STALE_DRIVER = 9  # its newest row is three days old; the view's TTL is one day


def boost(df: pd.DataFrame) -> pd.DataFrame:
    """The on-demand view's udf: the same function in training and in serving."""
    return pd.DataFrame({"boost": df["conv_rate"] * df["factor"] + np.log1p(df["trips"])})


def _feature_rows() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ids = DRIVERS + [STALE_DRIVER]
    older = [NOW - timedelta(hours=30)] * len(ids)  # superseded by the newer rows
    newer = [NOW - timedelta(hours=1)] * len(DRIVERS) + [NOW - timedelta(days=3)]
    return pd.DataFrame(
        {
            "driver_id": ids + ids,
            "event_timestamp": older + newer,
            "conv_rate": rng.uniform(0, 1, 2 * len(ids)).round(6),
            "trips": rng.integers(0, 50, 2 * len(ids)),
        }
    )


@dataclass
class World:
    """A feature store with materialized features, a model trained on its training set."""

    online_url: str
    store: FeatureStore
    train: pd.DataFrame  # the training set (features at label time), by driver
    model: Any
    factors: dict[int, float]

    def records(self, drivers: list[int]) -> list[dict[str, Any]]:
        return [{"driver_id": d, "factor": self.factors[d]} for d in drivers]

    def expected(self, drivers: list[int]) -> list[float]:
        rows = self.train.set_index("driver_id").loc[drivers, COLUMNS]
        return self.model.predict(rows).tolist()  # type: ignore[no-any-return]


def _world(online_url: str) -> World:
    store = FeatureStore(online_url=online_url)
    driver = Entity("driver", join_keys=["driver_id"])
    stats = FeatureView(
        "driver_stats",
        entities=[driver],
        schema=[Field("conv_rate", "float64"), Field("trips", "int64")],
        source=DataFrameSource(_feature_rows()),
        ttl=timedelta(days=1),
    )
    request = RequestSource("ride", [Field("factor", "float64")])
    boosted = OnDemandFeatureView(
        "boosted", sources=[stats, request], schema=[Field("boost", "float64")], udf=boost
    )
    store.apply([driver, stats, boosted])
    store.materialize(NOW - timedelta(days=10), NOW)
    factors = {d: 1.0 + d / 10 for d in DRIVERS}
    labels = pd.DataFrame(
        {
            "driver_id": DRIVERS,
            "event_timestamp": [NOW] * len(DRIVERS),
            "factor": [factors[d] for d in DRIVERS],
            "target": np.arange(len(DRIVERS), dtype="float64") ** 1.5,
        }
    )
    with ls.start_run(experiment="enrich") as run:
        train = store.get_historical_features(labels, REFS, register_as="drivers_train")
        model = LinearRegression().fit(train[COLUMNS], train["target"])
        run.log_model(model, name="drivers", sample_input=train[COLUMNS].head(3))
    return World(online_url, store, train, model, factors)


def _redis_online_url(redis_url: str) -> str:
    return f"{redis_url}?prefix=lsenrich-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def world(request: pytest.FixtureRequest, ls_home: Path) -> World:
    if request.param == "sqlite":
        return _world(f"sqlite:///{ls_home / 'online.db'}")
    return _world(_redis_online_url(request.getfixturevalue("redis_url")))


def _down_url(world: World, tmp_path: Path) -> str:
    """An online store of the same backend that cannot be reached."""
    if world.online_url.startswith("redis"):
        return f"redis://127.0.0.1:{free_port()}/0"
    blocked = tmp_path / "online-down.db"
    blocked.mkdir()  # a directory where the database file should be: SQLite cannot open it
    return f"sqlite:///{blocked}"


@contextmanager
def serving(**endpoints: dict[str, Any]) -> Iterator[tuple[str, ServingRuntime]]:
    """The serving app over endpoints on drivers/1, each enriching as its config says."""
    runtime = ServingRuntime(
        [
            EndpointSpec(name, "models:/drivers/1", enrichment=EnrichmentConfig.parse(config))
            for name, config in endpoints.items()
        ]
    )
    runtime.load_all()
    assert runtime.ready, [e.error for e in runtime.endpoints]
    with ThreadedServer(create_serving_app(runtime, start=False)) as server:
        yield server.url, runtime


def _predict(url: str, name: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/endpoints/{name}/predict", json=body, timeout=30)


def test_a_version_records_its_training_set(world: World) -> None:
    version = registry().get_model_version("drivers", 1)
    assert version.tags[TRAINING_SET_TAG] == "drivers_train/1"
    assert training_features(version) == (REFS, "drivers_train/1")
    # a version registered without the tag (another client) is found through its run
    bare = registry().create_model_version(
        "drivers",
        source=version.source,
        files=version.files,
        flavor=version.flavor,
        signature=version.signature,
        run_id=version.run_id,
    )
    assert TRAINING_SET_TAG not in bare.tags
    assert training_features(bare) == (REFS, "drivers_train/1")


def test_keys_only_requests_answer_as_the_model_on_training_features(world: World) -> None:
    drivers = [3, 1, 6, 1]
    with serving(drivers={"online_url": world.online_url}) as (url, runtime):
        got = _predict(url, "drivers", {"records": world.records(drivers)})
        assert got.status_code == 200, got.text
        doc = got.json()
        assert doc["predictions"] == world.expected(drivers)
        assert doc["enrichment"] == {
            "status": "ok",
            "defaulted": [],
            "stale": [],
            "missing": [],
            "breaker": "closed",
        }
        columns = {"driver_id": drivers, "factor": [world.factors[d] for d in drivers]}
        assert _predict(url, "drivers", {"columns": columns}).json()["predictions"] == (
            world.expected(drivers)
        )
        # the on-demand view ran in serving as in training: the same values, exactly
        result = runtime.get("drivers").model().enricher.enrich(world.records(drivers))  # type: ignore[union-attr]
        by_driver = world.train.set_index("driver_id")
        for column in COLUMNS:
            assert result.features[column] == by_driver.loc[drivers, column].tolist()
        assert list(result.inputs) == COLUMNS  # columns in the signature's order
        described = httpx.get(f"{url}/endpoints/drivers", timeout=10).json()["enrichment"]
        assert described["features"] == dict(zip(COLUMNS, REFS, strict=True))
        assert described["entity_keys"] == ["driver_id"]
        assert described["request_fields"] == ["factor"]
        assert described["training_set"] == "drivers_train/1"
        assert described["breaker"]["state"] == "closed"
        lacking = _predict(url, "drivers", {"records": [{"driver_id": 1}]})
        assert lacking.status_code == 422
        assert "'factor'" in lacking.json()["message"]
        # over OIP: one tensor per key column
        factors = [world.factors[d] for d in drivers]
        infer = {
            "inputs": [
                {"name": "driver_id", "datatype": "INT64", "shape": [4], "data": drivers},
                {"name": "factor", "datatype": "FP64", "shape": [4, 1], "data": factors},
            ]
        }
        oip = httpx.post(f"{url}/v2/models/drivers/infer", json=infer, timeout=30)
        assert oip.status_code == 200, oip.text
        (out,) = [o for o in oip.json()["outputs"] if o["name"] == "predict"]
        assert out["data"] == world.expected(drivers)
        infer["inputs"][0]["shape"] = [2, 2]
        bad = httpx.post(f"{url}/v2/models/drivers/infer", json=infer, timeout=30)
        assert bad.status_code == 400 and "shape" in bad.json()["error"], bad.text


def test_store_down_fails_closed_or_serves_declared_defaults(world: World, tmp_path: Path) -> None:
    down = _down_url(world, tmp_path)
    partial = {k: v for k, v in DEFAULTS.items() if k != "trips"}
    with serving(
        closed={"online_url": down},
        degraded={"online_url": down, "mode": "degraded", "defaults": DEFAULTS},
        partial={"online_url": down, "mode": "degraded", "defaults": partial},
    ) as (url, _):
        closed = _predict(url, "closed", {"records": world.records([1, 2])})
        assert closed.status_code == 503
        assert closed.json()["enrichment"]["status"] == "fail_closed"
        assert down.split("?")[0] in closed.json()["message"]
        assert "fails closed" in closed.json()["message"]

        degraded = _predict(url, "degraded", {"records": world.records([1, 2])})
        assert degraded.status_code == 200, degraded.text
        doc = degraded.json()
        assert doc["enrichment"]["status"] == "degraded"
        assert doc["enrichment"]["defaulted"] == COLUMNS
        assert "failed" in doc["enrichment"]["reason"]
        frame = pd.DataFrame([DEFAULTS, DEFAULTS])[COLUMNS]
        assert doc["predictions"] == world.model.predict(frame).tolist()

        no_default = _predict(url, "partial", {"records": world.records([1])})
        assert no_default.status_code == 503
        assert "trips have no declared default" in no_default.json()["message"]


def test_stale_and_missing_features(world: World) -> None:
    fresh, unknown = 2, 404
    records = [*world.records([fresh]), {"driver_id": STALE_DRIVER, "factor": 1.0}]
    with serving(
        closed={"online_url": world.online_url},
        degraded={"online_url": world.online_url, "mode": "degraded", "defaults": DEFAULTS},
        young={
            "online_url": world.online_url,
            "mode": "degraded",
            "defaults": DEFAULTS,
            "max_age_s": 60,
        },
    ) as (url, _):
        closed = _predict(url, "closed", {"records": records})
        assert closed.status_code == 503
        body = closed.json()
        assert body["enrichment"]["stale"] == ["boost", "conv_rate", "trips"]
        assert "feature conv_rate is stale for row(s) [1]" in body["message"]

        degraded = _predict(url, "degraded", {"records": records}).json()
        assert degraded["enrichment"]["status"] == "degraded"
        assert degraded["enrichment"]["stale"] == COLUMNS
        assert degraded["enrichment"]["defaulted"] == COLUMNS
        fresh_row = world.train.set_index("driver_id").loc[[fresh], COLUMNS]
        frame = pd.concat([fresh_row, pd.DataFrame([DEFAULTS])[COLUMNS]], ignore_index=True)
        assert degraded["predictions"] == world.model.predict(frame).tolist()

        # an hour-old value is stale to an endpoint that wants features under a minute old
        young = _predict(url, "young", {"records": world.records([fresh])}).json()
        assert young["enrichment"]["stale"] == COLUMNS
        assert (
            young["predictions"] == world.model.predict(pd.DataFrame([DEFAULTS])[COLUMNS]).tolist()
        )

        gone = _predict(url, "closed", {"records": [{"driver_id": unknown, "factor": 1.0}]})
        assert gone.status_code == 503, gone.text
        assert "no online value" in gone.json()["message"]
        filled = _predict(url, "degraded", {"records": [{"driver_id": unknown, "factor": 1.0}]})
        assert filled.json()["enrichment"]["missing"] == COLUMNS


def test_the_breaker_opens_after_failures_and_closes_after_a_probe(
    ls_home: Path, tmp_path: Path
) -> None:
    good = ls_home / "online.db"
    world = _world(f"sqlite:///{good}")
    blocked = tmp_path / "flaky.db"
    blocked.mkdir()
    config = {"online_url": f"sqlite:///{blocked}", "breaker": {"failures": 2, "cooldown_s": 0.5}}
    with serving(drivers=config) as (url, runtime):
        enricher = runtime.get("drivers").model().enricher
        assert enricher is not None
        now = [0.0]  # the breaker's clock, moved by the test (a loaded machine's pauses
        enricher.breaker._clock = lambda: now[0]  # would otherwise end the cooldown early)

        def state() -> dict[str, Any]:
            doc = httpx.get(f"{url}/endpoints/drivers", timeout=10).json()
            return doc["enrichment"]["breaker"]  # type: ignore[no-any-return]

        for _ in range(2):
            assert _predict(url, "drivers", {"records": world.records([1])}).status_code == 503
        assert state()["state"] == "open"
        gauge = 'loopstack_enrichment_breaker_state{endpoint="drivers",arm=""}'
        assert f"{gauge} 2" in httpx.get(f"{url}/metrics", timeout=10).text
        short = _predict(url, "drivers", {"records": world.records([1])})
        assert short.status_code == 503
        assert "circuit breaker is open" in short.json()["message"]
        assert short.json()["enrichment"]["breaker"] == "open"
        # the store comes back; while open, requests still do not touch it
        blocked.rmdir()
        for suffix in ("", "-wal"):  # the database and its write-ahead log
            if Path(f"{good}{suffix}").exists():
                shutil.copy(f"{good}{suffix}", f"{blocked}{suffix}")
        assert _predict(url, "drivers", {"records": world.records([1])}).status_code == 503
        assert enricher.stats.store_errors == 2
        assert enricher.stats.short_circuited == 2
        now[0] += 0.4
        assert state()["state"] == "open"  # not yet: the cooldown is 0.5 s
        now[0] += 0.2
        assert state()["state"] == "half_open"
        probe = _predict(url, "drivers", {"records": world.records([1])})
        assert probe.status_code == 200, probe.text
        assert probe.json()["predictions"] == world.expected([1])
        assert state()["state"] == "closed"
        assert state()["opened"] == 1
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert f"{gauge} 0" in metrics
        assert 'kind="short_circuited"} 2' in metrics
        assert 'outcome="failed_closed"} 4' in metrics


def test_breaker_states_under_a_controlled_clock() -> None:
    now = [0.0]
    breaker = CircuitBreaker(BreakerConfig(failures=3, cooldown_s=10), clock=lambda: now[0])
    for _ in range(2):
        assert breaker.acquire()
        breaker.failure()
    assert breaker.state == "closed"
    breaker.acquire()
    breaker.failure()
    assert breaker.state == "open" and not breaker.acquire()
    now[0] = 10.0
    assert breaker.state == "half_open"
    assert breaker.acquire()  # the probe
    assert not breaker.acquire()  # only one probe at a time
    breaker.failure()  # the probe failed: open again for a full cool-down
    assert breaker.state == "open"
    now[0] = 19.0
    assert not breaker.acquire()
    now[0] = 20.0
    assert breaker.acquire()
    breaker.success()
    assert breaker.state == "closed" and breaker.acquire()
    assert breaker.to_dict()["opened"] == 2


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"mode": "open"}, "'mode' is one of ['fail_closed', 'degraded']"),
        ({"modes": "degraded"}, "no setting(s) ['modes']"),
        ({"defaults": {"trips": [1]}}, "the default of feature 'trips' must be"),
        ({"defaults": ["trips"]}, "'defaults' maps each feature"),
        ({"breaker": {"failures": 0}}, "'failures' must be a whole number of at least 1"),
        ({"breaker": {"cool": 1}}, "no setting(s) ['cool']"),
        ({"timeout_s": 0}, "'timeout_s' must be a number of seconds above 0"),
        ({"max_age_s": "1h"}, "'max_age_s' must be a number of seconds"),
        ({"features": "driver_stats:trips"}, "'features' is a list"),
        ({"features": ["trips"]}, "looks like 'view:feature'"),
        ({"online_url": "ftp://x/y"}, "'online_url' must start with one of"),
        ("degraded", "is an object"),
    ],
)
def test_bad_enrichment_settings_say_what_is_wrong(config: Any, says: str) -> None:
    with pytest.raises(Invalid) as caught:
        EnrichmentConfig.parse(config)
    assert says in caught.value.message


def test_a_stored_deployment_enriches_as_its_options_say(world: World) -> None:
    store = deployments()
    store.create("drivers-api", "drivers/1")
    with pytest.raises(Invalid, match="no setting"):
        store.set_enrichment("drivers-api", {"mode": "degraded", "default": {}})
    store.set_enrichment(
        "drivers-api", {"mode": "degraded", "defaults": DEFAULTS, "online_url": world.online_url}
    )
    # a routing change keeps the endpoint's enrichment
    changed = store.set("drivers-api", "drivers/1")
    assert changed.options["enrichment"]["mode"] == "degraded"
    runtime = ServingRuntime([])
    DeploymentSource(store, ["drivers-api"]).poll(runtime)
    assert runtime.ready, [e.error for e in runtime.endpoints]
    with ThreadedServer(create_serving_app(runtime, start=False)) as server:
        got = _predict(server.url, "drivers-api", {"records": world.records([4, 5])})
        assert got.status_code == 200, got.text
        assert got.json()["predictions"] == world.expected([4, 5])
        assert got.json()["enrichment"]["status"] == "ok"
        described = httpx.get(f"{server.url}/endpoints/drivers-api", timeout=10).json()
        assert described["enrichment"]["mode"] == "degraded"
    off = store.set_enrichment("drivers-api", None)
    assert "enrichment" not in off.options


def test_an_endpoint_that_cannot_enrich_fails_to_load_saying_why(world: World) -> None:
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    with ls.start_run(experiment="plain") as run:
        run.log_model(LinearRegression().fit(X, [1.0, 2.0, 3.0]), name="plain", sample_input=X)
    runtime = ServingRuntime(
        [
            EndpointSpec("plain", "models:/plain/1", enrichment=EnrichmentConfig()),
            EndpointSpec(
                "typo",
                "models:/drivers/1",
                enrichment=EnrichmentConfig.parse({"defaults": {"trip": 0}}),
            ),
        ]
    )
    runtime.load_all()
    plain, typo = runtime.get("plain"), runtime.get("typo")
    assert plain.state == "failed" and "names no training set" in (plain.error or "")
    assert typo.state == "failed" and "'trip'" in (typo.error or "")
    assert "trips (driver_stats:trips)" in (typo.error or "")


def test_an_endpoints_defaults_may_name_features_other_arms_read(world: World) -> None:
    """One endpoint's defaults serve every arm: a challenger reading a new view needs its
    default there before its canary; the champion's arm must load beside it. A typo (an
    unknown view or feature) is still refused."""
    rides = FeatureView(
        "driver_rides",
        entities=[world.store.get_entity("driver")],
        schema=[Field("rides_1h", "int64")],
        source=DataFrameSource(
            pd.DataFrame({"driver_id": DRIVERS, "event_timestamp": [NOW] * len(DRIVERS),
                          "rides_1h": [1] * len(DRIVERS)})
        ),
        ttl=timedelta(minutes=5),
    )  # fmt: skip
    world.store.apply([rides])
    configs = {
        "shared": {**DEFAULTS, "driver_rides:rides_1h": 0},
        "unknown_view": {**DEFAULTS, "driver_ride:rides_1h": 0},
        "unknown_feature": {**DEFAULTS, "driver_rides:rides": 0},
    }
    runtime = ServingRuntime(
        [
            EndpointSpec(
                name,
                "models:/drivers/1",
                enrichment=EnrichmentConfig.parse(
                    {"online_url": world.online_url, "mode": "degraded", "defaults": config}
                ),
            )
            for name, config in configs.items()
        ]
    )
    runtime.load_all()
    assert runtime.get("shared").state == "ready", runtime.get("shared").error
    for name, typo in (("unknown_view", "driver_ride:rides_1h"), ("unknown_feature", "rides")):
        loaded = runtime.get(name)
        assert loaded.state == "failed" and typo in (loaded.error or ""), loaded.error


def test_an_alias_may_move_to_a_version_reading_one_more_feature(world: World) -> None:
    """Callers of an enriching endpoint send keys, not features: a new version that
    reads one more feature from the store takes their traffic unchanged; one that needs
    a new value from the caller does not."""
    from loopstack.errors import Conflict
    from loopstack.registry import SqlRegistry
    from loopstack.store import open_stores

    labels = pd.DataFrame(
        {
            "driver_id": DRIVERS,
            "event_timestamp": [NOW] * len(DRIVERS),
            "factor": [world.factors[d] for d in DRIVERS],
            "target": np.arange(len(DRIVERS), dtype="float64"),
        }
    )
    more = [*REFS[:2], "driver_stats:conv_rate"]  # the same view; then a new caller value
    reg = SqlRegistry(open_stores(), actor="root")
    reg.set_alias("drivers", "production", 1, override=True)
    with ls.start_run(experiment="enrich") as run:  # v2: conv_rate and trips, no boost
        train = world.store.get_historical_features(labels, more, register_as="drivers_train")
        cols = ["conv_rate", "trips"]
        run.log_model(LinearRegression().fit(train[cols], train["target"]), name="drivers",
                      sample_input=train[cols].head(3))  # fmt: skip
    with ls.start_run(experiment="enrich") as run:  # v3: v1's features plus a caller value
        train = world.store.get_historical_features(labels, REFS, register_as="drivers_train")
        train["surge"] = 1.0
        cols = [*COLUMNS, "surge"]
        run.log_model(LinearRegression().fit(train[cols], train["target"]), name="drivers",
                      sample_input=train[cols].head(3))  # fmt: skip
    with pytest.raises(Conflict, match=r"requires new input\(s\) \['surge'\]"):
        reg.set_alias("drivers", "production", 3, override=True)
    reg.set_alias("drivers", "production", 2, override=True)  # boost dropped: a feature
    assert reg.get_registered_model("drivers").aliases["production"] == 2


def test_the_serve_options_make_an_enrichment_config(tmp_path: Path) -> None:
    from loopstack.cli._serve_models import enrichment_config

    assert enrichment_config(None, [], None) is None
    path = tmp_path / "enrich.yaml"
    path.write_text("mode: degraded\ndefaults:\n  trips: 3\nmax_age_s: 60\n")
    config = enrichment_config(None, ["conv_rate=0.5", "city=unknown"], path)
    assert config.mode == "degraded" and config.max_age_s == 60
    assert config.default_values == {"trips": 3, "conv_rate": 0.5, "city": "unknown"}
    assert enrichment_config("fail_closed", [], path).mode == "fail_closed"
    with pytest.raises(Invalid, match="FEATURE=VALUE"):
        enrichment_config("degraded", ["trips"], None)
    with pytest.raises(Invalid, match="'mode' is one of"):
        enrichment_config("sometimes", [], None)


def test_serve_refuses_bad_enrich_options_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from loopstack.cli import app
    from loopstack.serving import ENDPOINTS_ENV, specs_from_env, specs_to_env

    runner = CliRunner()
    bad = runner.invoke(app, ["serve", "--model", "models:/x/1", "--enrich", "sometimes"])
    assert bad.exit_code == 1 and "'mode' is one of" in bad.output, bad.output
    assert "Traceback" not in bad.output
    alone = runner.invoke(app, ["serve", "--deployments", "--enrich", "degraded"])
    assert alone.exit_code == 1 and "give --model" in alone.output, alone.output
    # what the workers get: the endpoint list, enrichment included
    config = EnrichmentConfig.parse({"mode": "degraded", "defaults": DEFAULTS, "max_age_s": 9})
    spec = EndpointSpec("drivers", "models:/drivers/1", enrichment=config)
    monkeypatch.setenv(ENDPOINTS_ENV, specs_to_env([spec]))
    assert specs_from_env() == [spec]


def test_a_hung_store_times_out_instead_of_hanging_the_request(ls_home: Path) -> None:
    import socket

    world = _world(f"sqlite:///{ls_home / 'online.db'}")
    with socket.socket() as hung:  # accepts connections (the backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        config = {"online_url": url, "timeout_s": 0.3, "mode": "degraded", "defaults": DEFAULTS}
        with serving(drivers=config) as (base, runtime):
            got = _predict(base, "drivers", {"records": world.records([1])})
            assert got.status_code == 200, got.text
            assert got.json()["enrichment"]["status"] == "degraded"
            assert "did not answer within 0.3s" in got.json()["enrichment"]["reason"]
            enricher = runtime.get("drivers").model().enricher
            assert enricher is not None and enricher.stats.timeouts == 1
            enricher.close()


def test_deploy_enrich_sets_and_clears_the_endpoints_enrichment(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loopstack.cli import app

    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with ls.start_run(experiment="cli") as run:
        run.log_model(LinearRegression().fit(X, [1.0, 2.0, 3.0]), name="m", sample_input=X)
    deployments().create("api", "m/1")
    path = tmp_path / "enrich.json"
    path.write_text('{"mode": "degraded", "defaults": {"a": 1}, "max_age_s": 30}')
    runner = CliRunner()
    got = runner.invoke(app, ["deploy", "enrich", "api", "--config", str(path), "--default", "b=2"])
    assert got.exit_code == 0, got.output
    options = deployments().get("api").options["enrichment"]
    assert options["mode"] == "degraded" and options["defaults"] == {"a": 1, "b": 2}
    assert options["max_age_s"] == 30
    both = runner.invoke(app, ["deploy", "enrich", "api", "--off", "--mode", "degraded"])
    assert both.exit_code == 1 and "--off" in both.output
    off = runner.invoke(app, ["deploy", "enrich", "api", "--off"])
    assert off.exit_code == 0, off.output
    assert "enrichment" not in deployments().get("api").options
