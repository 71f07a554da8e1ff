from __future__ import annotations

from models.events import CatalogEntry, CustomerRecord, SwitchDecision
from rules.consumption import CustomerState
from rules.recommend import (
    apply_catalog_entry,
    apply_customer_record,
    apply_decision,
    evaluate,
)
from tests.helpers import make_settings
from tests.unit.test_consumption import Customer, feed_year

T = 1_700_000_000_000


def customer_in_tier(monthly: list[float], tier_on_record: int | None = 3) -> Customer:
    customer = Customer()
    apply_customer_record(
        customer.state, CustomerRecord("c1", "residential", None, tier_on_record, "P3")
    )
    feed_year(customer, monthly)
    return customer


def catalog() -> dict[str, str]:
    entries: dict[str, str] = {}
    for tier, package in ((1, "P1"), (2, "P2"), (3, "P3")):
        apply_catalog_entry(
            entries, CatalogEntry("upsert", "residential", tier, package)
        )
    return entries


def test_a_tier_change_is_published_with_its_evidence() -> None:
    customer = customer_in_tier([300, 300, 300])
    result = evaluate(customer.state, customer.settings, catalog(), T)
    assert result.tier_change is not None
    assert (result.tier_change.old_tier, result.tier_change.new_tier) == (None, 2)
    assert result.tier_change.band_counts == {"1": 0, "2": 3, "3": 0}
    assert result.tier_change.months == ["2023-01", "2023-02", "2023-03"]
    assert evaluate(customer.state, customer.settings, catalog(), T).tier_change is None


def test_a_tier_differing_from_the_record_brings_one_recommendation() -> None:
    customer = customer_in_tier([300, 300, 300])
    first = evaluate(customer.state, customer.settings, catalog(), T).recommendation
    assert first is not None
    assert (first.current_tier, first.current_package) == (3, "P3")
    assert (first.recommended_tier, first.recommended_package) == (2, "P2")
    again = evaluate(customer.state, customer.settings, catalog(), T + 1)
    assert again.recommendation is None


def test_equal_tiers_recommend_nothing() -> None:
    customer = customer_in_tier([300, 300, 300], tier_on_record=2)
    result = evaluate(customer.state, customer.settings, catalog(), T)
    assert result.tier_change is not None and result.recommendation is None


def test_a_catalog_gap_publishes_nothing_to_the_customer_and_is_counted_once() -> None:
    customer = customer_in_tier([300, 300, 300])
    empty: dict[str, str] = {}
    first = evaluate(customer.state, customer.settings, empty, T)
    assert first.recommendation is None
    assert first.catalog_gap is not None and first.catalog_gap.tier == 2
    assert evaluate(customer.state, customer.settings, empty, T + 1).catalog_gap is None


def test_a_declined_package_is_not_recommended_until_the_tier_changes() -> None:
    customer = customer_in_tier([300, 300, 300])
    recommendation = evaluate(
        customer.state, customer.settings, catalog(), T
    ).recommendation
    assert recommendation is not None
    declined = apply_decision(
        customer.state,
        SwitchDecision("c1", recommendation.recommendation_id, "decline", T),
    )
    assert declined.rejection is None and declined.package_events == []
    assert (
        evaluate(customer.state, customer.settings, catalog(), T + 1).recommendation
        is None
    )
    feed_year(customer, [600, 600, 600, 600], year=2023)  # months now band 1
    later = evaluate(customer.state, customer.settings, catalog(), T + 2)
    assert later.tier_change is not None and later.tier_change.new_tier == 1
    assert (
        later.recommendation is not None
        and later.recommendation.recommended_package == "P1"
    )


def test_accepting_switches_the_record_and_moves_the_package_counters() -> None:
    customer = customer_in_tier([300, 300, 300])
    recommendation = evaluate(
        customer.state, customer.settings, catalog(), T
    ).recommendation
    assert recommendation is not None
    decision = SwitchDecision("c1", recommendation.recommendation_id, "accept", T + 5)
    result = apply_decision(customer.state, decision)
    assert [(e.package_id, e.kind) for e in result.package_events] == [
        ("P3", "unsubscribe"),
        ("P2", "subscribe"),
    ]
    assert (customer.state.tier_on_record, customer.state.package_on_record) == (
        2,
        "P2",
    )
    assert apply_decision(customer.state, decision).package_events == []  # replay
    assert (
        evaluate(customer.state, customer.settings, catalog(), T + 6).recommendation
        is None
    )


def test_a_decision_for_an_unknown_recommendation_is_rejected() -> None:
    state = CustomerState("c1")
    result = apply_decision(state, SwitchDecision("c1", "c1-r9", "accept", T))
    assert (
        result.rejection is not None
        and result.rejection.reason == "unknown_recommendation"
    )


def test_a_zone_change_after_booked_months_is_refused() -> None:
    customer = customer_in_tier([300])
    rejection = apply_customer_record(
        customer.state, CustomerRecord("c1", "residential", "Europe/Berlin")
    )
    assert rejection is not None and rejection.reason == "zone_change_after_readings"
    fresh = CustomerState("c2")
    assert (
        apply_customer_record(fresh, CustomerRecord("c2", "primary", "Europe/Berlin"))
        is None
    )
    assert fresh.zone == "Europe/Berlin"
    assert make_settings().timezone == "UTC"
