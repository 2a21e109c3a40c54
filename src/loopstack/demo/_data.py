"""The demo's world: seeded synthetic card transactions, their customers and merchants.

A customer has a spending level, an account age and an age band (the sensitive
attribute the fairness gate checks; fraud does not depend on it). A merchant has a
category and a fraud rate. A transaction has an amount, the cardholder's local hour,
whether it was abroad, and whether it was fraud. Fraud before the drift follows one
pattern (abroad, unusually large for the customer, at risky merchants, at night); the
drift brings prices up, more travel abroad and a fraud ring testing stolen cards on
domestic electronics and gaming merchants at mid-range amounts, which the first
model never saw. A card used by a fraudster makes many transactions in a short time,
so the last hour's count of a customer's transactions (its *velocity*, kept by a
streaming job) gives fraud away.

Everything is drawn from one ``numpy`` generator, so a seed gives the same world.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "AGE_BANDS",
    "CATEGORIES",
    "REQUEST_FIELDS",
    "World",
]

CATEGORIES = ("grocery", "fuel", "fashion", "travel", "electronics", "gaming")
AGE_BANDS = ("18-29", "30-49", "50+")
#: what a payment request carries besides the entity keys
REQUEST_FIELDS = ("amount", "hour", "is_foreign")
_MIX_BEFORE = np.array([0.34, 0.2, 0.18, 0.1, 0.1, 0.08])
_MIX_AFTER = np.array([0.22, 0.14, 0.14, 0.12, 0.22, 0.16])
_SCALE = np.array([40.0, 50.0, 70.0, 260.0, 180.0, 30.0])  # typical amount per category
_HOURS = np.array([1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 8, 7, 7, 7, 7, 7, 8, 8, 7, 5, 3, 2.0])
_HOURS = _HOURS / _HOURS.sum()


@dataclass
class World:
    """Customers, merchants and the generator that draws transactions of either era."""

    seed: int = 0
    n_customers: int = 3000
    n_merchants: int = 300
    rng: np.random.Generator = field(init=False)
    customers: pd.DataFrame = field(init=False)
    merchants: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        rng = self.rng
        n = self.n_customers
        self.customers = pd.DataFrame(
            {
                "customer_id": np.arange(1, n + 1, dtype=np.int64),
                "age_band": rng.choice(AGE_BANDS, n, p=[0.3, 0.45, 0.25]),
                "level": rng.lognormal(0.0, 0.45, n),
                "account_age_days": rng.integers(20, 3650, n).astype(np.int64),
            }
        )
        m = self.n_merchants
        category = rng.choice(len(CATEGORIES), m, p=_MIX_BEFORE)
        self.merchants = pd.DataFrame(
            {
                "merchant_id": np.arange(1, m + 1, dtype=np.int64),
                "category_code": category.astype(np.int64),
                "merchant_fraud_rate_30d": np.clip(rng.beta(1.2, 60.0, m), 0, 1),
                "merchant_avg_amount": _SCALE[category] * rng.lognormal(0, 0.25, m),
            }
        )

    # -- transactions ------------------------------------------------------------------
    def transactions(self, times: Any, *, drifted: bool) -> pd.DataFrame:
        """One transaction per timestamp of ``times`` (UTC), of the era ``drifted`` says,
        with its label ``is_fraud`` and the customer's velocity at that moment."""
        rng = self.rng
        ts = pd.to_datetime(pd.Series(times), utc=True).reset_index(drop=True)
        n = len(ts)
        mix = _MIX_AFTER if drifted else _MIX_BEFORE
        by_category = [
            self.merchants.index[self.merchants["category_code"] == c].to_numpy()
            for c in range(len(CATEGORIES))
        ]
        category = rng.choice(len(CATEGORIES), n, p=mix)
        merchant_rows = np.array(
            [by_category[c][rng.integers(len(by_category[c]))] for c in category]
        )
        merchant = self.merchants.iloc[merchant_rows].reset_index(drop=True)
        customer_rows = rng.integers(0, len(self.customers), n)
        customer = self.customers.iloc[customer_rows].reset_index(drop=True)
        inflation = 1.5 if drifted else 1.0
        amount = (
            _SCALE[category] * customer["level"].to_numpy() * rng.lognormal(0, 0.6, n) * inflation
        )
        hour = rng.choice(24, n, p=_HOURS)
        foreign = rng.random(n) < (0.2 if drifted else 0.08)
        usual = _SCALE[category] * customer["level"].to_numpy() * inflation
        logit = (
            -6.0
            + 2.4 * foreign
            + 2.0 * np.log(amount / usual)
            + 55.0 * merchant["merchant_fraud_rate_30d"].to_numpy()
            + 1.8 * (hour < 6)
        )
        fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
        if drifted:  # the ring: domestic electronics and gaming at mid-range amounts
            ring = (category >= 4) & ~foreign & (amount > 60) & (amount < 700)
            fraud |= ring & (rng.random(n) < 0.3)
        velocity = np.where(fraud, 1 + rng.poisson(2.5, n), rng.poisson(0.4, n))
        return pd.DataFrame(
            {
                "event_timestamp": ts,
                "customer_id": customer["customer_id"].to_numpy(),
                "merchant_id": merchant["merchant_id"].to_numpy(),
                "amount": np.round(amount, 2),
                "hour": hour.astype(np.int64),
                "is_foreign": foreign.astype(np.int64),
                "age_band": customer["age_band"].to_numpy(),
                "txn_count_1h": velocity.astype(np.int64),
                "is_fraud": fraud.astype(np.int64),
            }
        )

    def history(self, end: dt.datetime, *, days: int = 28, per_day: int = 1600) -> pd.DataFrame:
        """``days`` of transactions before ``end``, ordered by time, all before the drift."""
        n = days * per_day
        offsets = np.sort(self.rng.uniform(0, days * 86400.0, n))
        times = pd.Timestamp(end) - pd.to_timedelta(days * 86400.0 - offsets, unit="s")
        return self.transactions(times, drifted=False)

    # -- the feature tables (the offline sources) --------------------------------------------
    def customer_profiles(self, end: dt.datetime, *, weeks: int = 5) -> pd.DataFrame:
        """Weekly snapshots of each customer's profile, the last one just before ``end``."""
        rows = []
        for w in range(weeks):
            at = pd.Timestamp(end) - pd.Timedelta(days=7 * (weeks - 1 - w), minutes=30)
            c = self.customers
            rows.append(
                pd.DataFrame(
                    {
                        "customer_id": c["customer_id"],
                        "event_timestamp": at,
                        "account_age_days": c["account_age_days"] - 7 * (weeks - 1 - w),
                        "avg_amount_30d": np.round(
                            80.0 * c["level"] * self.rng.lognormal(0, 0.1, len(c)), 2
                        ),
                        "txn_count_30d": self.rng.poisson(16, len(c)).astype(np.int64),
                    }
                )
            )
        return pd.concat(rows, ignore_index=True)

    def merchant_stats(self, end: dt.datetime, *, weeks: int = 5) -> pd.DataFrame:
        """Weekly snapshots of each merchant's numbers, the last one just before ``end``."""
        rows = []
        for w in range(weeks):
            at = pd.Timestamp(end) - pd.Timedelta(days=7 * (weeks - 1 - w), minutes=30)
            m = self.merchants
            rows.append(
                m.assign(
                    event_timestamp=at,
                    merchant_fraud_rate_30d=np.clip(
                        m["merchant_fraud_rate_30d"] * self.rng.lognormal(0, 0.05, len(m)), 0, 1
                    ),
                )
            )
        return pd.concat(rows, ignore_index=True)

    @staticmethod
    def velocity_rows(txns: pd.DataFrame) -> pd.DataFrame:
        """What the streaming job wrote for ``txns``: each customer's velocity one second
        before each of its transactions."""
        return pd.DataFrame(
            {
                "customer_id": txns["customer_id"].to_numpy(),
                "event_timestamp": txns["event_timestamp"] - pd.Timedelta(seconds=1),
                "txn_count_1h": txns["txn_count_1h"].to_numpy(),
            }
        )


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
