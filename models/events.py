"""The events the product reads and writes, as typed values.

Instants are epoch milliseconds (UTC). Energy inside the rules is kept in integer
milliwatt-hours (1 mWh = 1e-6 kWh) so that sums do not depend on the order the
readings arrive in; events carry kWh as floats at the edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any, ClassVar, Literal

SCHEMA_VERSION = 1
MWH_PER_KWH = 1_000_000

PackageEventKind = Literal["subscribe", "unsubscribe", "review", "push"]
Decision = Literal["accept", "decline"]


def to_mwh(kwh: float) -> int:
    """kWh as whole milliwatt-hours, the rules' unit of energy."""
    return round(kwh * MWH_PER_KWH)


def to_kwh(mwh: int) -> float:
    return mwh / MWH_PER_KWH


# --- input events -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntervalReading:
    """kWh consumed by one meter between ``start_ms`` and ``end_ms``."""

    customer_id: str
    meter_id: str
    start_ms: int
    end_ms: int
    kwh: float
    customer_type: str | None = None


@dataclass(frozen=True, slots=True)
class IntervalBlock:
    """Consecutive interval values of one meter, as head-end systems deliver them.

    A None value is a missing interval: it books nothing and covers nothing.
    """

    customer_id: str
    meter_id: str
    start_ms: int
    interval_ms: int
    values: tuple[float | None, ...]
    customer_type: str | None = None

    def expand(self) -> list[IntervalReading]:
        """The readings of the block, with the identities they would have alone."""
        readings = []
        for slot, kwh in enumerate(self.values):
            if kwh is None:
                continue
            start = self.start_ms + slot * self.interval_ms
            readings.append(
                IntervalReading(
                    self.customer_id,
                    self.meter_id,
                    start,
                    start + self.interval_ms,
                    kwh,
                    self.customer_type,
                )
            )
        return readings


@dataclass(frozen=True, slots=True)
class RegisterReading:
    """A cumulative register's running total at an instant."""

    customer_id: str
    meter_id: str
    at_ms: int
    register_kwh: float
    register_max: float | None = None
    customer_type: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """What the retailer's CRM says of a customer; names and phones are not read."""

    customer_id: str
    customer_type: str
    timezone: str | None = None
    tier_on_record: int | None = None
    package_on_record: str | None = None


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """The package meant for one customer type and tier, or its removal."""

    op: Literal["upsert", "delete"]
    customer_type: str
    tier: int
    package_id: str | None


@dataclass(frozen=True, slots=True)
class PackageEvent:
    """Something that happened to a package: subscribe, unsubscribe, review, push."""

    package_id: str
    kind: PackageEventKind
    at_ms: int
    good: bool | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class SwitchDecision:
    """A customer's answer to a recommendation."""

    customer_id: str
    recommendation_id: str
    decision: Decision
    at_ms: int


@dataclass(frozen=True, slots=True)
class CampaignCommand:
    """An operator's command on a package's running campaign (only ``stop``)."""

    package_id: str
    command: Literal["stop"]
    at_ms: int


Reading = IntervalReading | RegisterReading
MeterMessage = IntervalReading | IntervalBlock | RegisterReading


# --- output events ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Output:
    EVENT_TYPE: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["version"] = SCHEMA_VERSION
        body["type"] = self.EVENT_TYPE
        return body


@dataclass(frozen=True, slots=True)
class TierChange(_Output):
    EVENT_TYPE = "tier_change"
    customer_id: str
    customer_type: str | None
    old_tier: int | None
    new_tier: int | None
    band_counts: dict[str, int]
    months: list[str]
    at_ms: int


@dataclass(frozen=True, slots=True)
class Recommendation(_Output):
    EVENT_TYPE = "recommendation"
    recommendation_id: str
    customer_id: str
    customer_type: str
    current_tier: int | None
    current_package: str | None
    recommended_tier: int
    recommended_package: str
    band_counts: dict[str, int]
    months: list[str]
    at_ms: int


@dataclass(frozen=True, slots=True)
class CatalogGap(_Output):
    """No package in the catalog for a customer's analyzed tier (for operators)."""

    EVENT_TYPE = "catalog_gap"
    customer_type: str
    tier: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class SuspectReading(_Output):
    """A register reading that dropped without a declared maximum."""

    EVENT_TYPE = "suspect_reading"
    customer_id: str
    meter_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class HeatChange(_Output):
    EVENT_TYPE = "heat_change"
    package_id: str
    old_heat: str | None
    new_heat: str
    ts: float
    at_ms: int


@dataclass(frozen=True, slots=True)
class MarketingAction(_Output):
    EVENT_TYPE = "marketing_action"
    package_id: str
    old_level: int | None
    new_level: int | None
    measures: list[str]
    heat: str
    hl: float
    at_ms: int


@dataclass(frozen=True, slots=True)
class CampaignEffect(_Output):
    EVENT_TYPE = "campaign_effect"
    campaign_id: str
    package_id: str
    level: int
    final: bool
    started_ms: int
    ended_ms: int | None
    duration_days: float
    ts1: float
    ts2: float
    gain: float
    ineffective: bool
    achieved_grade: str | None
    expected_grade: str
    reached: bool
    at_ms: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input could not be used: a machine-readable reason and the field."""

    reason: str
    field: str | None = None
    detail: str = ""
    count: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter(_Output):
    EVENT_TYPE = "dead_letter"
    topic: str
    partition: int | None
    offset: int | None
    reason: str
    field: str | None
    detail: str
    original: str
    extra: dict[str, Any] = dataclass_field(default_factory=dict)


Output = (
    TierChange
    | Recommendation
    | CatalogGap
    | SuspectReading
    | HeatChange
    | MarketingAction
    | CampaignEffect
)
