"""The customer's analyzed tier against the tier on record: tier changes,
recommendations, and the customer's accept or decline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from config import Settings
from models.events import (
    CatalogEntry,
    CatalogGap,
    CustomerRecord,
    PackageEvent,
    Recommendation,
    Rejection,
    SwitchDecision,
    TierChange,
)
from rules.consumption import CustomerState, analyze_tier, month_views

__all__ = [
    "Evaluation",
    "apply_catalog_entry",
    "apply_customer_record",
    "apply_decision",
    "catalog_key",
    "evaluate",
]

Catalog = Mapping[str, str]


def catalog_key(customer_type: str, tier: int) -> str:
    return f"{customer_type}:{tier}"


def apply_catalog_entry(catalog: dict[str, str], entry: CatalogEntry) -> None:
    key = catalog_key(entry.customer_type, entry.tier)
    if entry.op == "delete":
        catalog.pop(key, None)
    elif entry.package_id is not None:
        catalog[key] = entry.package_id


@dataclass(slots=True)
class Evaluation:
    tier_change: TierChange | None = None
    recommendation: Recommendation | None = None
    catalog_gap: CatalogGap | None = None

    def outputs(self) -> list[TierChange | Recommendation | CatalogGap]:
        found = (self.tier_change, self.recommendation, self.catalog_gap)
        return [event for event in found if event is not None]


def apply_customer_record(
    state: CustomerState, record: CustomerRecord
) -> Rejection | None:
    """Take the CRM's view of a customer; a zone change after readings is refused."""
    if record.timezone is not None and record.timezone != state.zone:
        if state.months:
            return Rejection(
                "zone_change_after_readings",
                "timezone",
                "months are already booked in another zone",
            )
        state.zone = record.timezone
    state.customer_type = record.customer_type
    if record.tier_on_record is not None:
        state.tier_on_record = record.tier_on_record
    if record.package_on_record is not None:
        state.package_on_record = record.package_on_record
    return None


def evaluate(
    state: CustomerState, settings: Settings, catalog: Catalog, at_ms: int
) -> Evaluation:
    """Re-derive the tier; publish a change, and recommend where the record differs."""
    result = analyze_tier(month_views(state, settings), settings)
    evaluation = Evaluation()
    if result.tier != state.tier:
        evaluation.tier_change = TierChange(
            state.customer_id,
            state.customer_type,
            state.tier,
            result.tier,
            result.band_counts,
            result.months,
            at_ms,
        )
        state.tier = result.tier
        state.declined_package = None
        state.gap_tier = None
    tier = state.tier
    if tier is None or tier == state.tier_on_record or state.customer_type is None:
        state.pending = None
        return evaluation
    package = catalog.get(catalog_key(state.customer_type, tier))
    if package is None:
        if state.gap_tier != tier:
            state.gap_tier = tier
            evaluation.catalog_gap = CatalogGap(state.customer_type, tier, at_ms)
        return evaluation
    pending = state.pending
    if package == state.declined_package or (
        pending is not None
        and pending["package"] == package
        and pending["tier"] == tier
    ):
        return evaluation
    state.recommendation_seq += 1
    recommendation = Recommendation(
        f"{state.customer_id}-r{state.recommendation_seq}",
        state.customer_id,
        state.customer_type,
        state.tier_on_record,
        state.package_on_record,
        tier,
        package,
        result.band_counts,
        result.months,
        at_ms,
    )
    state.pending = {
        "id": recommendation.recommendation_id,
        "tier": tier,
        "package": package,
    }
    evaluation.recommendation = recommendation
    return evaluation


@dataclass(slots=True)
class DecisionResult:
    rejection: Rejection | None = None
    package_events: list[PackageEvent] = field(default_factory=list)


def apply_decision(state: CustomerState, decision: SwitchDecision) -> DecisionResult:
    """Record an accept (switch tier and package) or a decline (remember it).

    Accepting makes the package counters see an unsubscribe from the old package
    and a subscribe to the new one; their event ids derive from the
    recommendation, so a replayed decision counts once.
    """
    if decision.recommendation_id == state.last_decision:
        return DecisionResult()
    pending = state.pending
    if pending is None or pending["id"] != decision.recommendation_id:
        return DecisionResult(
            Rejection(
                "unknown_recommendation",
                "recommendation_id",
                "no such pending recommendation",
            )
        )
    state.pending = None
    state.last_decision = decision.recommendation_id
    if decision.decision == "decline":
        state.declined_package = pending["package"]
        return DecisionResult()
    events = []
    old_package = state.package_on_record
    if old_package is not None and old_package != pending["package"]:
        events.append(
            PackageEvent(
                old_package,
                "unsubscribe",
                decision.at_ms,
                None,
                f"{decision.recommendation_id}:unsubscribe",
            )
        )
    if old_package != pending["package"]:
        events.append(
            PackageEvent(
                pending["package"],
                "subscribe",
                decision.at_ms,
                None,
                f"{decision.recommendation_id}:subscribe",
            )
        )
    state.tier_on_record = pending["tier"]
    state.package_on_record = pending["package"]
    return DecisionResult(None, events)
