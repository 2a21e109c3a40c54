"""The demo's live side: card payments sent to the endpoint, their labels coming back a
little later, the velocity stream job and the warehouse export.

One thread does it all, in order, so the story stays reproducible enough: before each
request of ``batch`` payments the velocity job (while it runs) pushes each customer's
velocity to the online store, as a stream job would on the card's authorisation; the
request carries only the entity keys and the request values; ``label_delay_s`` later
the labels go back through ``POST /endpoints/{name}/feedback``; every ``export_s`` the
labelled payments (and the velocities the job wrote) are appended to the warehouse,
the offline sources the next training set is built from.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loopstack.demo._data import REQUEST_FIELDS, World, write_parquet

__all__ = ["Traffic"]


@dataclass
class Counts:
    """What the traffic saw, per model version that answered."""

    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    frauds: collections.Counter[str] = field(default_factory=collections.Counter)
    caught: collections.Counter[str] = field(default_factory=collections.Counter)
    degraded: collections.Counter[str] = field(default_factory=collections.Counter)
    labelled: int = 0


@dataclass
class Traffic:
    """Payments at ``rate`` requests a second to ``url``'s ``endpoint`` (see the module)."""

    world: World
    url: str
    endpoint: str
    warehouse: Path  # transactions.parquet
    velocity_source: Path  # customer_velocity.parquet
    push: Callable[[pd.DataFrame], Any]
    rate: float = 20.0
    batch: int = 20
    label_delay_s: float = 2.0
    export_s: float = 3.0
    drifted: bool = False
    velocity_job: bool = True
    counts: Counts = field(default_factory=Counts)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _due: collections.deque[tuple[float, str, pd.DataFrame]] = field(
        default_factory=collections.deque
    )
    _labelled: list[pd.DataFrame] = field(default_factory=list)
    _velocities: list[pd.DataFrame] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start sending in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; the labels still due are sent and the warehouse written."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def alive(self) -> bool:
        """Is the sender still running?"""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        import httpx

        next_export = time.monotonic() + self.export_s
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    self._send(client)
                    self._feedback(client, time.monotonic())
                    if time.monotonic() >= next_export:
                        self.export()
                        next_export = time.monotonic() + self.export_s
                except Exception as exc:  # noqa: BLE001 - reported by the demo, which goes on
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.5)
                self._stop.wait(max(0.0, 1.0 / self.rate - (time.monotonic() - began)))
            self._feedback(client, float("inf"))
        self.export()

    def _send(self, client: Any) -> None:
        now = pd.Timestamp.now(tz="UTC")
        txns = self.world.transactions([now] * self.batch, drifted=self.drifted)
        if self.velocity_job:
            rows = World.velocity_rows(txns.assign(event_timestamp=now + pd.Timedelta(seconds=1)))
            self.push(rows)
            with self._lock:
                self._velocities.append(rows)
        records = txns[["customer_id", "merchant_id", *REQUEST_FIELDS]].to_dict("records")
        rid = uuid.uuid4().hex
        got = client.post(
            f"{self.url}/endpoints/{self.endpoint}/predict",
            json={"records": records},
            headers={"X-Request-ID": rid, "X-Routing-Key": rid},
        )
        if got.status_code != 200:
            self.counts.failed[str(got.status_code)] += 1
            return
        body = got.json()
        version = str(body.get("model_version"))
        self.counts.requests[version] += 1
        if (body.get("enrichment") or {}).get("status") == "degraded":
            self.counts.degraded[version] += 1
        said = [int(p) for p in body["predictions"]]
        truth = txns["is_fraud"].astype(int).tolist()
        self.counts.frauds[version] += sum(truth)
        self.counts.caught[version] += sum(s and t for s, t in zip(said, truth, strict=True))
        self._due.append((time.monotonic() + self.label_delay_s, rid, txns))

    def _feedback(self, client: Any, now: float) -> None:
        while self._due and self._due[0][0] <= now:
            _, rid, txns = self._due.popleft()
            fed = client.post(
                f"{self.url}/endpoints/{self.endpoint}/feedback",
                json={"request_id": rid, "label": txns["is_fraud"].astype(int).tolist()},
            )
            if fed.status_code == 200:
                with self._lock:
                    self._labelled.append(txns)
                    self.counts.labelled += len(txns)

    def export(self) -> None:
        """Append the payments labelled since the last export, and the velocities the job
        wrote, to the warehouse (each file rewritten whole)."""
        with self._lock:
            labelled, self._labelled = self._labelled, []
            velocities, self._velocities = self._velocities, []
        for new, path in ((labelled, self.warehouse), (velocities, self.velocity_source)):
            if new:
                old = pd.read_parquet(path)
                write_parquet(pd.concat([old, *new], ignore_index=True), path)
