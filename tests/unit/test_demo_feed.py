from __future__ import annotations

import functools
from collections import Counter, defaultdict
from typing import TypedDict

import orjson
import pytest

from models.decode import (
    decode_catalog_entry,
    decode_customer,
    decode_meter_message,
    decode_package_event,
)
from models.events import (
    CampaignEffect,
    HeatChange,
    IntervalBlock,
    MarketingAction,
    PackageEvent,
    Rejection,
)
from rules.packages import PackageState, apply_package_event
from streams.demo_feed import (
    DAY_MS,
    DEMO_BANDS,
    DemoEvent,
    demo_customers,
    demo_events,
    package_events,
)
from tests.helpers import make_settings, ms


class DemoSize(TypedDict):
    customers: int
    days: int


SMALL = DemoSize(customers=8, days=60)
HALF_HOUR_MS = 1_800_000


@functools.cache
def small_feed(seed: int = 7) -> tuple[DemoEvent, ...]:
    return tuple(demo_events(seed=seed, **SMALL))


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    again = tuple(demo_events(seed=7, **SMALL))
    assert again == small_feed(7)
    assert tuple(demo_events(seed=8, **SMALL)) != small_feed(7)


def test_events_come_in_non_decreasing_event_time() -> None:
    times = [event.at_ms for event in small_feed()]
    assert times == sorted(times)


def test_catalog_then_customers_open_the_feed_at_the_start_instant() -> None:
    events = small_feed()
    topics = [event.topic for event in events[:20]]
    assert topics == ["catalog"] * 12 + ["customers"] * 8
    assert {event.at_ms for event in events[:20]} == {ms("2024-01-01T00:00:00+00:00")}
    assert {event.topic for event in events[20:]} == {
        "meter-readings",
        "package-events",
    }


def test_every_message_decodes_and_is_keyed_by_its_entity() -> None:
    for event in small_feed():
        if event.topic == "meter-readings":
            block = decode_meter_message(event.value, 1_800_000)
            assert isinstance(block, IntervalBlock), block
            assert event.key == block.customer_id.encode()
            assert block.interval_ms == HALF_HOUR_MS
            assert len(block.values) == 48
            # Delivered after the metered day has ended.
            assert event.at_ms >= block.start_ms + DAY_MS
        elif event.topic == "customers":
            customer = decode_customer(event.value)
            assert not isinstance(customer, Rejection), customer
            assert event.key == customer.customer_id.encode()
            assert customer.package_on_record is not None
            assert customer.tier_on_record is not None
        elif event.topic == "catalog":
            entry = decode_catalog_entry(event.value)
            assert not isinstance(entry, Rejection), entry
            assert entry.op == "upsert"
            assert event.key == f"{entry.customer_type}:{entry.tier}".encode()
        else:
            assert event.topic == "package-events"
            package_event = decode_package_event(event.value)
            assert isinstance(package_event, PackageEvent), package_event
            assert event.key == package_event.package_id.encode()
            assert package_event.at_ms == event.at_ms


def test_customer_records_carry_no_names_or_phones() -> None:
    records = [orjson.loads(e.value) for e in small_feed() if e.topic == "customers"]
    assert {frozenset(record) for record in records} == {
        frozenset(
            {"customer_id", "customer_type", "tier_on_record", "package_on_record"}
        )
    }
    assert {record["customer_type"] for record in records} == set(DEMO_BANDS)


def test_catalog_has_a_package_for_every_type_and_tier() -> None:
    entries = [orjson.loads(e.value) for e in small_feed() if e.topic == "catalog"]
    assert {(e["customer_type"], e["tier"]) for e in entries} == {
        (ctype, tier) for ctype in DEMO_BANDS for tier in (1, 2, 3)
    }
    assert {e["package_id"] for e in entries} >= {"RES-T1", "SEC-T3"}


def test_demo_bands_are_the_shipped_configuration() -> None:
    assert dict(DEMO_BANDS) == dict(make_settings().bands)


def test_customers_are_drawn_into_every_band_and_some_near_boundaries() -> None:
    bands_seen: dict[str, set[int | None]] = defaultdict(set)
    trending = 0
    for customer in demo_customers(200, seed=7):
        monthly = customer.annual_kwh / 12
        bands_seen[customer.customer_type].add(
            DEMO_BANDS[customer.customer_type].band_of(monthly)
        )
        trending += abs(customer.trend) >= 0.2
    assert all(seen == {1, 2, 3} for seen in bands_seen.values()), bands_seen
    assert len(bands_seen) == 4
    assert 40 <= trending <= 110


def test_a_residential_day_peaks_in_the_evening_as_h0_does() -> None:
    residential = {
        e.key
        for e in small_feed()
        if e.topic == "customers"
        and orjson.loads(e.value)["customer_type"] == "residential"
    }
    evening = night = 0.0
    for event in small_feed():
        if event.topic == "meter-readings" and event.key in residential:
            values = orjson.loads(event.value)["values"]
            evening += sum(v or 0.0 for v in values[36:42])  # 18:00-21:00
            night += sum(v or 0.0 for v in values[6:8]) * 3  # 03:00-04:00, x3
    assert evening > 1.5 * night > 0


def test_a_years_readings_add_up_to_each_customers_drawn_annual_total() -> None:
    start = "2023-01-01T00:00:00+00:00"  # 365 days is exactly the year
    totals: Counter[bytes] = Counter()
    for event in demo_events(customers=8, start=start, days=365, seed=11):
        if event.topic == "meter-readings":
            values = orjson.loads(event.value)["values"]
            totals[event.key] += sum(v for v in values if v is not None)
    for customer in demo_customers(8, seed=11):
        total = totals[customer.customer_id.encode()]
        assert total == pytest.approx(customer.annual_kwh, rel=0.03), customer


def test_a_package_year_reaches_all_heats_and_levels_and_ends_campaigns() -> None:
    settings = make_settings()
    states: dict[str, PackageState] = {}
    heats: Counter[str] = Counter()
    levels: Counter[int | None] = Counter()
    finals: list[CampaignEffect] = []
    for event in package_events(days=365, seed=7):
        decoded = decode_package_event(event.value)
        assert isinstance(decoded, PackageEvent)
        state = states.setdefault(decoded.package_id, PackageState(decoded.package_id))
        for output in apply_package_event(state, decoded, settings):
            if isinstance(output, HeatChange):
                heats[output.new_heat] += 1
            elif isinstance(output, MarketingAction):
                levels[output.new_level] += 1
            elif output.final:
                finals.append(output)
    assert len(states) == 12
    assert set(heats) == {"cold", "medium", "hot"}
    assert {1, 2, 3} <= set(levels)
    assert finals
    assert any(not effect.ineffective for effect in finals)


def test_package_events_do_not_depend_on_the_number_of_customers() -> None:
    alone = list(package_events(days=10, seed=3))
    few = [
        e
        for e in demo_events(customers=2, days=10, seed=3)
        if e.topic == "package-events"
    ]
    many = [
        e
        for e in demo_events(customers=9, days=10, seed=3)
        if e.topic == "package-events"
    ]
    assert alone == few == many
    assert alone


def test_the_default_year_has_the_expected_volume_and_some_missing_intervals() -> None:
    topics: Counter[str] = Counter()
    blocks_with_gaps = 0
    for event in demo_events():
        topics[event.topic] += 1
        if event.topic == "meter-readings" and b"null" in event.value:
            blocks_with_gaps += 1
    assert topics["catalog"] == 12
    assert topics["customers"] == 200
    assert topics["meter-readings"] == 200 * 365
    assert 10_000 <= topics["package-events"] <= 80_000
    assert 1 <= blocks_with_gaps <= 150
