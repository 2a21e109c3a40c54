"""Streaming inference on the machine's real Redis: a registered sklearn model behind a
stored deployment scores a Redis Stream into the prediction log, exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.errors import Invalid
from loopstack.serving import deployments
from loopstack.serving.stream import RedisStreamSource, StreamScorer, parse_redis_source

pytestmark = pytest.mark.redis

COLS = ["a", "b", "c"]


@pytest.fixture
def endpoint() -> str:
    """A binary classifier on three float columns, registered, behind 'score-api'."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLS)
    y = (X["a"] + X["b"] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with ls.start_run(experiment="stream") as run:
        run.log_model(model, name="scorer", artifact_path="m", sample_input=X.head(5))
    deployments().create("score-api", "scorer/1")
    return "score-api"


@pytest.fixture
def stream_url(redis_url: str) -> Any:
    import redis

    name = f"test-stream-{uuid.uuid4().hex[:10]}"
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}stream={name}"
    client = redis.Redis.from_url(redis_url)
    yield url
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)


def produce(url: str, n: int, start: int = 0) -> list[str]:
    import redis

    conn, name = parse_redis_source(url)
    client = redis.Redis.from_url(conn)
    ids = []
    for i in range(start, start + n):
        row = {"a": i / 10, "b": -i / 20, "c": 1.0, "user": i}
        ids.append(client.xadd(name, {"data": json.dumps(row)}).decode())
    return ids


def logged(scorer: StreamScorer) -> list[str]:
    table = scorer.prediction_log.read_predictions("score-api")
    return [
        r
        for r, s in zip(table["request_id"].to_pylist(), table["shadow"].to_pylist(), strict=True)
        if not s
    ]


def test_scores_a_stream_into_the_prediction_log(endpoint: str, stream_url: str) -> None:
    ids = produce(stream_url, 25)
    source = RedisStreamSource(stream_url, "g1", "c1")
    scorer = StreamScorer(endpoint, source, batch=10)
    stats = scorer.run(idle_exit_s=0.3)
    assert stats.scored == 25
    name = source.name
    table = scorer.prediction_log.read_predictions(endpoint)
    assert sorted(table["request_id"].to_pylist()) == sorted(f"{name}:{i}" for i in ids)
    assert set(table["model_version"].to_pylist()) == {"1"}
    first = json.loads(table["inputs"][0].as_py())
    assert first[0]["c"] == 1.0
    assert source.pending() == 0
    metrics = scorer.metrics.render().decode()
    assert (
        f'loopstack_stream_events_total{{endpoint="score-api",outcome="scored",'
        f'stream="{name}"}} 25.0' in metrics
    )
    assert "loopstack_stream_lag_seconds_count" in metrics


def test_a_replay_writes_nothing_twice(endpoint: str, stream_url: str) -> None:
    import redis

    produce(stream_url, 12)
    StreamScorer(endpoint, RedisStreamSource(stream_url, "g", "c1"), batch=5).run(idle_exit_s=0.3)
    conn, name = parse_redis_source(stream_url)
    redis.Redis.from_url(conn).xgroup_setid(name, "g", "0")  # rewind the group: a replay
    produce(stream_url, 3, start=100)
    scorer = StreamScorer(endpoint, RedisStreamSource(stream_url, "g", "c2"), batch=5)
    stats = scorer.run(idle_exit_s=0.3)
    assert (stats.skipped, stats.scored) == (12, 3)
    counts = Counter(logged(scorer))
    assert len(counts) == 15 and set(counts.values()) == {1}


def test_written_but_not_acknowledged_is_not_written_again(endpoint: str, stream_url: str) -> None:
    """A consumer that died between the flush and the ack: its events come back, pending,
    and are found in the prediction log."""
    produce(stream_url, 8)
    source = RedisStreamSource(stream_url, "g", "dies")
    scorer = StreamScorer(endpoint, source, batch=8)
    source.ack = lambda ids: None  # type: ignore[method-assign]  # the crash: no ack
    scorer.run(max_events=8)
    assert source.pending() == 8
    again = StreamScorer(endpoint, RedisStreamSource(stream_url, "g", "dies"), batch=8)
    stats = again.run(idle_exit_s=0.3)  # its own pending entries first
    assert (stats.scored, stats.skipped) == (0, 8)
    assert len(logged(again)) == 8


def test_bad_events_go_to_the_dead_letter_stream(endpoint: str, stream_url: str) -> None:
    import redis

    conn, name = parse_redis_source(stream_url)
    client = redis.Redis.from_url(conn)
    produce(stream_url, 2)
    client.xadd(name, {"data": "{not json"})
    client.xadd(name, {"data": json.dumps({"a": "high", "b": 1, "c": 2})})
    client.xadd(name, {"data": json.dumps({"a": 1.0})})
    produce(stream_url, 2, start=10)
    scorer = StreamScorer(endpoint, RedisStreamSource(stream_url, "g", "c"), batch=3)
    stats = scorer.run(idle_exit_s=0.3)
    assert (stats.scored, stats.dead_lettered) == (4, 3)
    dead = client.xrange(f"{name}:dead")
    reasons = [f[b"reason"].decode() for _, f in dead]
    assert "cannot parse" in reasons[0] and "not JSON" in reasons[0]
    assert all("signature" in r for r in reasons[1:]), reasons
    assert dead[0][1][b"payload"].decode() == json.dumps({"data": "{not json"})
    assert client.xpending(name, "g")["pending"] == 0


def test_the_score_is_written_back_to_the_online_store(
    endpoint: str, stream_url: str, tmp_path: Path
) -> None:
    user = ls.Entity("user", join_keys=["user"])
    src = tmp_path / "scores.parquet"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pd.DataFrame({"user": [0], "event_timestamp": [t0], "score": [0.0]}).to_parquet(src)
    view = ls.FeatureView(
        "user_scores",
        entities=[user],
        timestamp_field="event_timestamp",
        schema=[ls.Field("score", "float64")],
        source=str(src),
    )
    store = ls.FeatureStore()
    store.apply([user, view])
    produce(stream_url, 5)
    scorer = StreamScorer(
        endpoint, RedisStreamSource(stream_url, "g", "c"), write_feature="user_scores:score"
    )
    scorer.run(idle_exit_s=0.3)
    got = store.get_online_features([{"user": 3}, {"user": 4}], ["user_scores:score"]).to_dict()
    table = scorer.prediction_log.read_predictions(endpoint).to_pandas()
    outputs = {
        json.loads(i)[0]["user"]: json.loads(o)
        for i, o in zip(table["inputs"], table["output"], strict=True)
    }
    assert got["score"] == pytest.approx([outputs[u]["predict_proba"][0][1] for u in (3, 4)])


def test_a_bad_write_back_feature_is_refused_before_any_work(
    endpoint: str, stream_url: str
) -> None:
    produce(stream_url, 1)
    with pytest.raises(Invalid, match="VIEW:FEATURE"):
        StreamScorer(endpoint, RedisStreamSource(stream_url, "g", "c"), write_feature="nocolon")


@pytest.mark.slow
def test_a_killed_consumer_leaves_every_event_scored_exactly_once(
    endpoint: str, stream_url: str, ls_home: Path
) -> None:
    """A real `loopstack stream run` subprocess, SIGKILLed midway; a second consumer
    reclaims what it held and finishes."""
    ids = produce(stream_url, 400)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    cmd = [
        sys.executable,
        "-m",
        "loopstack.cli",
        "stream",
        "run",
        endpoint,
        "--source",
        stream_url,
        "--group",
        "g",
        "--batch",
        "5",
    ]
    out = ls_home.parent / "first.log"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [*cmd, "--consumer", "first"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    source = RedisStreamSource(stream_url, "g", "watcher")
    deadline = time.monotonic() + 120
    while len(source.done(ids)) < 60:
        assert proc.poll() is None, out.read_text()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert len(source.done(ids)) < 400
    second = subprocess.run(
        [*cmd, "--consumer", "second", "--claim-idle-ms", "500", "--until-idle", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    scorer = StreamScorer(endpoint, source)
    scorer.open()
    counts = Counter(logged(scorer))
    assert set(counts) == {f"{source.name}:{i}" for i in ids}
    assert set(counts.values()) == {1}
    assert source.pending() == 0


def test_metrics_are_served_on_a_port(endpoint: str, stream_url: str) -> None:
    produce(stream_url, 3)
    scorer = StreamScorer(endpoint, RedisStreamSource(stream_url, "g", "c"))
    port = scorer.metrics.serve(0)
    scorer.run(idle_exit_s=0.3)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "loopstack_stream_lag_seconds_bucket" in body
    assert 'outcome="scored"' in body
