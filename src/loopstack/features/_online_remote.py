"""Online reads through a loopstack server's feature server, in Feast's JSON shape.

``POST /api/v1/features/online`` takes what ``feast serve``'s ``/get-online-features``
takes::

    {"features": ["driver_stats:trips"] | "feature_service": "churn_v1",
     "entities": {"driver_id": [1001, 1002]}, "full_feature_names": false}

(``entity_rows``, a list of dicts, may replace ``entities``) and answers as it does::

    {"metadata": {"feature_names": ["driver_id", "trips"], "join_keys": ["driver_id"]},
     "results": [{"values": [...], "statuses": ["PRESENT", ...],
                  "event_timestamps": ["2024-01-01T00:00:00Z", ...]}, ...]}

A status is ``PRESENT``, ``NULL_VALUE`` (found, but null), ``NOT_FOUND`` (no row for
that entity; its event time is the epoch) or ``OUTSIDE_MAX_AGE`` (older than the view's
ttl). Timestamp and bytes values travel as ISO-8601 and base64 text; ``metadata`` names
the features holding them (``timestamp_features``, ``bytes_features``) so a loopstack
client decodes them back.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopstack.features._online_read import OnlineResponse, _rows

if TYPE_CHECKING:
    from loopstack.store.remote import HttpClient

__all__ = ["EPOCH", "get_online_features_remote", "response_from_wire", "response_to_wire"]

EPOCH = "1970-01-01T00:00:00Z"


def _iso(ts: datetime | None) -> str:
    return EPOCH if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _status(value: Any, ts: datetime | None, stale: bool) -> str:
    if ts is None and value is None:
        return "NOT_FOUND"
    if stale:
        return "OUTSIDE_MAX_AGE"
    return "NULL_VALUE" if value is None else "PRESENT"


def _from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _from_b64(text: str) -> bytes:
    return base64.b64decode(text)


def response_to_wire(resp: OnlineResponse) -> dict[str, Any]:
    """Feast's ``/get-online-features`` answer for ``resp``."""
    keys = list(resp.entities)
    results = [
        {
            "values": [_json_value(v) for v in resp.entities[k]],
            "statuses": ["PRESENT"] * len(resp.entities[k]),
            "event_timestamps": [EPOCH] * len(resp.entities[k]),
        }
        for k in keys
    ]
    for col in resp._columns:
        values, stamps, stale = resp.values[col], resp.event_timestamps[col], resp.stale[col]
        results.append(
            {
                "values": [_json_value(v) for v in values],
                "statuses": [
                    _status(v, t, s) for v, t, s in zip(values, stamps, stale, strict=True)
                ],
                "event_timestamps": [_iso(t) for t in stamps],
            }
        )
    typed = {
        kind: [c for c in resp._columns if any(isinstance(v, cls) for v in resp.values[c])]
        for kind, cls in (("timestamp", datetime), ("bytes", bytes))
    }
    metadata = {
        "feature_names": keys + resp._columns,
        "join_keys": keys,
        "timestamp_features": typed["timestamp"],
        "bytes_features": typed["bytes"],
    }
    return {"metadata": metadata, "results": results}


def response_from_wire(answer: dict[str, Any]) -> OnlineResponse:
    """The ``OnlineResponse`` a feature server's answer describes."""
    meta = answer["metadata"]
    names = list(meta["feature_names"])
    keys = set(meta.get("join_keys") or [])
    decode = dict.fromkeys(meta.get("timestamp_features") or [], _from_iso)
    decode.update(dict.fromkeys(meta.get("bytes_features") or [], _from_b64))
    entities: dict[str, list[Any]] = {}
    values: dict[str, list[Any]] = {}
    stamps: dict[str, list[datetime | None]] = {}
    stale: dict[str, list[bool]] = {}
    columns: list[str] = []
    for name, result in zip(names, answer["results"], strict=True):
        if name in keys:
            entities[name] = list(result["values"])
            continue
        columns.append(name)
        dec = decode.get(name)
        values[name] = [v if dec is None or v is None else dec(v) for v in result["values"]]
        stamps[name] = [
            None if t == EPOCH else datetime.fromisoformat(t) for t in result["event_timestamps"]
        ]
        stale[name] = [s == "OUTSIDE_MAX_AGE" for s in result["statuses"]]
    return OnlineResponse(entities, values, stamps, stale, columns)


def get_online_features_remote(
    client: HttpClient,
    entity_rows: Any,
    refs: list[str],
    full_feature_names: bool,
) -> OnlineResponse:
    """``FeatureStore.get_online_features`` through the server's feature server."""
    body: dict[str, Any] = {
        "entity_rows": [
            {k: _json_value(v) for k, v in r.items()} if isinstance(r, dict) else r
            for r in _rows(entity_rows)
        ],
        "full_feature_names": bool(full_feature_names),
    }
    # a service's own references (as locally); HTTP clients may send "feature_service"
    body["features"] = refs
    return response_from_wire(client.call("POST", "/features/online", json=body))
