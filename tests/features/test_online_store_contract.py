"""One contract for every online store backend: memory, SQLite and the real Redis server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopstack.errors import Invalid
from loopstack.features.online import (
    OnlineBatch,
    OnlineStore,
    decode_values,
    encode_key,
    encode_values,
    open_online_store,
)


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'online.db'}"
    else:
        url = f"{request.getfixturevalue('redis_url')}?prefix=lstest-{uuid.uuid4().hex[:10]}"
    store = open_online_store(url)
    yield store
    for view in store.views():
        store.delete_view(view)
    store.close()


def batch(rows: list[tuple[object, int, dict[str, object]]]) -> OnlineBatch:
    return OnlineBatch(
        keys=[encode_key((k,)) for k, _, _ in rows],
        event_ts=[ts for _, ts, _ in rows],
        values=[encode_values(v) for _, _, v in rows],
    )


def values(store: OnlineStore, view: str, *keys: object) -> list[tuple[int, dict] | None]:
    out = store.read(view, [encode_key((k,)) for k in keys])
    return [None if r is None else (r[0], decode_values(r[1])) for r in out]


def test_write_then_read_many_in_order(online: OnlineStore) -> None:
    kept = online.write(
        "drivers", [batch([(1, 10, {"a": 1.5, "b": "x"}), (2, 20, {"a": None, "b": "y"})])]
    )
    assert kept == 2
    assert values(online, "drivers", 2, 3, 1) == [
        (20, {"a": None, "b": "y"}),
        None,
        (10, {"a": 1.5, "b": "x"}),
    ]
    assert values(online, "drivers", 1) == [(10, {"a": 1.5, "b": "x"})]
    assert values(online, "other", 1) == [None]


def test_newest_event_wins_and_late_data_is_dropped(online: OnlineStore) -> None:
    online.write("v", [batch([(1, 100, {"a": 1})])])
    kept = online.write("v", [batch([(1, 50, {"a": 0}), (2, 5, {"a": 2})])])
    assert kept == 1  # only entity 2: entity 1's event is older than the stored one
    assert values(online, "v", 1, 2) == [(100, {"a": 1}), (5, {"a": 2})]
    online.write("v", [batch([(1, 100, {"a": 7})])])  # a tie overwrites (a correction)
    assert values(online, "v", 1) == [(100, {"a": 7})]
    # within one write, the newest row per key wins whatever the order
    online.write("v", [batch([(3, 9, {"a": "new"}), (3, 8, {"a": "old"})])])
    assert values(online, "v", 3) == [(9, {"a": "new"})]


def test_a_failing_write_changes_nothing(online: OnlineStore) -> None:
    online.write("v", [batch([(1, 10, {"a": 1})])], watermark=10)

    def batches() -> Iterator[OnlineBatch]:
        yield batch([(1, 20, {"a": 2}), (2, 20, {"a": 2})])
        raise OSError("the source went away")

    with pytest.raises(OSError, match="went away"):
        online.write("v", batches(), watermark=20)
    assert values(online, "v", 1, 2) == [(10, {"a": 1}), None]
    assert online.watermark("v") == 10


def test_watermark_stats_scan_and_delete(online: OnlineStore) -> None:
    assert online.watermark("v") is None
    assert online.stats("v").rows == 0
    online.write("v", [batch([(1, 10, {"a": 1})]), batch([(2, 30, {"a": 2})])], watermark=40)
    online.write("v", [batch([(3, 20, {"a": 3})])])  # no watermark: the old one stays
    stats = online.stats("v")
    assert (stats.rows, stats.newest_event_ts, stats.watermark) == (3, 30, 40)
    assert sorted((k, ts) for k, ts, _ in online.scan("v")) == [("1", 10), ("2", 30), ("3", 20)]
    online.write("w", [batch([(1, 1, {"a": 1})])])
    assert online.views() == ["v", "w"]
    online.delete_view("v")
    assert values(online, "v", 1) == [None]
    assert online.watermark("v") is None
    assert online.views() == ["w"]
    assert values(online, "w", 1) == [(1, {"a": 1})]


def test_large_write_in_chunks(online: OnlineStore) -> None:
    n = 5_000
    kept = online.write("big", [batch([(i, i, {"f": i}) for i in range(n)])])
    assert kept == n
    got = values(online, "big", *range(0, n, 50))
    assert got == [(i, {"f": i}) for i in range(0, n, 50)]


def test_composite_and_string_keys(online: OnlineStore) -> None:
    key = encode_key(("ünïcode", 7))
    online.write("v", [OnlineBatch([key], [1], [encode_values({"x": "ü"})])])
    got = online.read("v", [key, encode_key(("ünïcode", 8))])
    assert got[1] is None and got[0] is not None
    assert decode_values(got[0][1]) == {"x": "ü"}


def test_concurrent_readers_and_writer(online: OnlineStore) -> None:
    online.write("v", [batch([(i, 0, {"a": 0}) for i in range(100)])])
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(50):
                rows = values(online, "v", *range(100))
                # a reader never sees half a write: all rows from one version
                assert len({r[0] for r in rows if r}) == 1
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for version in range(1, 11):
        online.write("v", [batch([(i, version, {"a": version}) for i in range(100)])])
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_unknown_scheme_names_the_valid_ones() -> None:
    with pytest.raises(Invalid) as err:
        open_online_store("cassandra://host/ks")
    assert "sqlite://" in err.value.message and "redis://" in err.value.message
    assert "cassandra://host/ks" in err.value.message


def test_binary_rows_and_json_rows_live_side_by_side(online: OnlineStore) -> None:
    from loopstack.features.online import encode_rows, is_binary_row

    blobs = encode_rows(["a", "b"], [[1.5, None], ["x", "ü"]], 2)
    assert all(is_binary_row(b) for b in blobs)
    online.write("v", [OnlineBatch(["1", "2"], [10, 10], blobs)])
    online.write("v", [batch([(3, 10, {"a": 3.0, "b": "json"})])])  # a row written as JSON
    assert values(online, "v", 1, 2, 3) == [
        (10, {"a": 1.5, "b": "x"}),
        (10, {"a": None, "b": "ü"}),
        (10, {"a": 3.0, "b": "json"}),
    ]
    # late data and ties behave the same across encodings
    online.write(
        "v",
        [
            OnlineBatch(
                ["3", "1"], [9, 10], encode_rows(["a", "b"], [[0.0, 2.5], ["old", "tie"]], 2)
            )
        ],
    )
    assert values(online, "v", 3, 1) == [
        (10, {"a": 3.0, "b": "json"}),
        (10, {"a": 2.5, "b": "tie"}),
    ]
    assert {k: decode_values(v) for k, _, v in online.scan("v")}["2"] == {"a": None, "b": "ü"}


def test_a_key_repeated_in_one_batch_keeps_its_last_row(online: OnlineStore) -> None:
    keys = [encode_key((k,)) for k in (5, 1, 5, 3, 5)]
    online.write("v", [OnlineBatch(keys, [1] * 5, [encode_values({"a": i}) for i in range(5)])])
    assert values(online, "v", 5, 1, 3) == [(1, {"a": 4}), (1, {"a": 1}), (1, {"a": 3})]


# Rows exactly as loopstack wrote them before format 2 (format 1, marshal version 4):
# the numpy path for numbers and booleans, and the general path with back-references.
FORMAT_1_ARROW = bytes.fromhex(
    "290569010000007a0d726174651f74726970731f6f6b67000000000000e03f690700000054"
)
FORMAT_1_GENERAL = bytes.fromhex(
    "a905e901000000fa0e726174651f6e616d651f746167734ef502000000c3bcdb020000007201000000da0178"
)


def test_format_1_and_json_rows_written_before_stay_readable(online: OnlineStore) -> None:
    import marshal

    legacy = marshal.dumps((1, "a\x1fb\x1fc", 2**70, -(2**40), "x" * 300, [1.5, None]), 4)
    online.write(
        "v",
        [
            OnlineBatch(
                ["1", "2", "3", "4", "5"],
                [1] * 5,
                [
                    FORMAT_1_ARROW,
                    FORMAT_1_GENERAL,
                    legacy,
                    encode_values({"a": 1, "b": "json text"}),
                    encode_values({"a": 2}).encode(),  # JSON stored as bytes
                ],
            )
        ],
    )
    assert values(online, "v", 1, 2, 3, 4, 5) == [
        (1, {"rate": 0.5, "trips": 7, "ok": True}),
        (1, {"rate": None, "name": "ü", "tags": [1, "x"]}),
        (1, {"a": 2**70, "b": -(2**40), "c": "x" * 300}),  # more values than names: dropped
        (1, {"a": 1, "b": "json text"}),
        (1, {"a": 2}),
    ]


def test_a_row_of_an_unknown_format_version_is_refused(online: OnlineStore) -> None:
    import marshal

    import msgpack

    newer = msgpack.packb([3, "a", 1.0])
    online.write("v", [OnlineBatch(["1", "2"], [1, 1], [newer, marshal.dumps((99, "a", 1))])])
    [(_, got), (_, old)] = online.read("v", ["1", "2"])  # type: ignore[misc]
    with pytest.raises(Invalid, match=r"format version 3; this loopstack reads versions 1, 2"):
        decode_values(got)
    with pytest.raises(Invalid, match="format version 99"):
        decode_values(old)
    for junk in (b"\x00\x01", b"\x93\x02", msgpack.packb([2, 5, 1]), b"[1]", "[1]"):
        with pytest.raises(Invalid, match="online"):
            decode_values(junk)


def _tripwire() -> None:
    TRIPPED.append(True)


TRIPPED: list[bool] = []


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _tripwire, ()


def test_a_crafted_row_cannot_build_an_object(
    online: OnlineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import marshal
    import pickle

    import msgpack

    calls: list[bytes] = []
    monkeypatch.setattr(marshal, "loads", calls.append)  # the reader must never call it
    monkeypatch.setattr(pickle, "loads", calls.append)
    deep: list[object] = [1]
    for _ in range(40):
        deep = [deep]
    crafted = {
        "code": marshal.dumps((1, "a", compile("open('/tmp/pwned', 'w')", "row", "exec"))),
        "set": marshal.dumps((1, "a", frozenset({1}))),
        "pickle": pickle.dumps(_Payload()),
        "pickle0": pickle.dumps(_Payload(), protocol=0),
        "ext": msgpack.packb([2, "a", msgpack.ExtType(7, b"obj")]),
        "deep": marshal.dumps((1, "a", deep)),
    }
    online.write("v", [OnlineBatch(list(crafted), [1] * len(crafted), list(crafted.values()))])
    stored = {k: v for k, _, v in online.scan("v")}
    for name, blob in stored.items():
        with pytest.raises(Invalid, match="online row") as err:
            decode_values(blob)
        assert "marshal type 'c'" in err.value.message or name != "code"
    assert calls == [] and TRIPPED == []
    # a timestamp extension decodes to an int, never to a msgpack.Timestamp object
    row = msgpack.packb([2, "t", msgpack.Timestamp(5, 0)])
    assert decode_values(row) == {"t": 5_000_000_000}


def test_arrow_rows_match_the_general_encoding() -> None:
    import msgpack
    import pyarrow as pa

    from loopstack.features.online import encode_arrow_rows, encode_rows

    nan = float("nan")
    cases = [
        (
            [
                pa.array([0.1, None, nan, -0.0]),
                pa.array([1, 2, None, -5], pa.int64()),
                pa.array([True, False, None, True]),
                pa.array([0.5, 1.5, 2.5, None], pa.float32()),
                pa.array([1, 2, 3, 4], pa.uint8()),
            ]
        ),
        ([pa.array([1.0, 2.0, 3.0, 4.0]), pa.array([2**40, 1, 2, -(2**63)])]),  # wide ints
        ([pa.array([2**64 - 1, 0, 1, 2], pa.uint64()), pa.array([-1, 0, 1, 2], pa.int8())]),
        ([pa.array([[1], [], None, [2, 3]]), pa.array([1.0, 2.0, 3.0, 4.0])]),  # lists
        ([pa.array(["a", None, "c", "d"]), pa.array([1.0, 2.0, 3.0, 4.0])]),
    ]
    for arrays in cases:
        names = [f"f{i}" for i in range(len(arrays))]
        got = encode_arrow_rows(names, arrays, 4)
        want = encode_rows(names, [a.to_pylist() for a in arrays], 4)
        assert [repr(msgpack.unpackb(g)) for g in got] == [repr(msgpack.unpackb(w)) for w in want]
        assert [decode_values(g)["f0"] is None for g in got] == [
            a is None for a in arrays[0].to_pylist()
        ]
    assert encode_arrow_rows(["a"], [pa.array([], pa.float64())], 0) == []
    many = [pa.array([float(i)] * 2) for i in range(300)]  # past a msgpack fixarray and 255
    names = [f"f{i}" for i in range(300)]
    assert encode_arrow_rows(names, many, 2) == encode_rows(
        names, [[float(i)] * 2 for i in range(300)], 2
    )
    assert decode_values(encode_arrow_rows(names, many, 2)[1])["f299"] == 299.0


def test_values_without_a_binary_form_are_refused_by_the_encoder() -> None:
    import datetime as dt

    from loopstack.features.online import encode_rows

    for value in (dt.date(2024, 1, 2), 2**64, object()):
        with pytest.raises(ValueError, match="no binary row form"):
            encode_rows(["a"], [[value]], 1)
