"""``tariffstream analyze``: the streaming rules run offline over a CSV file.

Readings are sorted by event time per customer first (a batch has the whole
file, so it can do what a perfectly ordered stream would), then booked with the
same ``rules`` code the workers run. Months that leave the analysis window are
kept for the report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from models.events import IntervalReading, RegisterReading
from rules.consumption import (
    CustomerState,
    MonthView,
    analyze_tier,
    book_meter_message,
    month_views,
)
from rules.ledger import MemoryLedger

__all__ = ["CustomerReport", "Report", "analyze_readings"]

Reading = IntervalReading | RegisterReading


@dataclass(slots=True)
class CustomerReport:
    customer_id: str
    customer_type: str | None
    tier: int | None
    band_counts: dict[str, int]
    months: list[MonthView]

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "customer_type": self.customer_type,
            "tier": self.tier,
            "band_counts": self.band_counts,
            "months": [
                {
                    "month": m.label,
                    "kwh": round(m.kwh, 6),
                    "coverage": round(m.coverage, 6),
                    "closed": m.closed,
                    "counted": m.counted,
                    "band": m.band,
                }
                for m in self.months
            ],
        }


@dataclass(slots=True)
class Report:
    customers: list[CustomerReport] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    suspects: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "customers": [c.to_json() for c in self.customers],
            "rejected": dict(sorted(self.rejected.items())),
        }


def analyze_readings(readings: list[Reading], settings: Settings) -> Report:
    """Fold readings into customers' months and tiers, as the workers do."""
    per_customer: dict[str, list[Reading]] = defaultdict(list)
    for reading in readings:
        per_customer[reading.customer_id].append(reading)
    report = Report()
    for customer_id in sorted(per_customer):
        report.customers.append(
            _analyze_customer(customer_id, per_customer[customer_id], settings, report)
        )
    return report


def _instant(reading: Reading) -> int:
    return reading.start_ms if isinstance(reading, IntervalReading) else reading.at_ms


def _analyze_customer(
    customer_id: str, readings: list[Reading], settings: Settings, report: Report
) -> CustomerReport:
    state = CustomerState(customer_id)
    ledger = MemoryLedger()
    retired: list[MonthView] = []
    for reading in sorted(readings, key=_instant):
        booking = book_meter_message(state, reading, ledger, settings)
        for rejection in booking.rejections:
            report.rejected[rejection.reason] += rejection.count
        report.suspects += len(booking.notices)
        retired.extend(booking.retired)
    views = month_views(state, settings)
    result = analyze_tier(views, settings)
    return CustomerReport(
        customer_id,
        state.customer_type,
        result.tier,
        result.band_counts,
        retired + views,
    )
