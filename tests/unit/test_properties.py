"""Invariants of the rules, checked on generated inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from models.events import IntervalReading
from rules.consumption import (
    CustomerState,
    analyze_tier,
    book_meter_message,
    month_views,
)
from rules.ledger import MemoryLedger
from rules.packages import usage_value
from tests.helpers import make_settings, ms

SETTINGS = make_settings(**{"tier.min_months": 1})
HALF_HOUR = 1_800_000
BASE = ms("2023-01-01T00:00:00+00:00")
# Slots spread over 14 months so that nothing leaves the 14-month window.
slots = st.integers(min_value=0, max_value=14 * 30 * 48 // 7 - 1).map(lambda n: n * 7)
values = st.decimals(min_value=0, max_value=50, places=3).map(float)
reading_sets = st.dictionaries(slots, values, min_size=1, max_size=60)


def fold(
    readings: list[IntervalReading],
) -> tuple[dict[int, int], int | None, dict[str, int]]:
    state, ledger = CustomerState("c1"), MemoryLedger()
    for reading in readings:
        book_meter_message(state, reading, ledger, SETTINGS)
    views = month_views(state, SETTINGS)
    result = analyze_tier(views, SETTINGS)
    return {v.month: v.mwh for v in views}, result.tier, result.band_counts


def as_readings(chosen: dict[int, float]) -> list[IntervalReading]:
    return [
        IntervalReading(
            "c1",
            "m1",
            BASE + slot * HALF_HOUR,
            BASE + (slot + 1) * HALF_HOUR,
            kwh,
            "residential",
        )
        for slot, kwh in chosen.items()
    ]


@given(reading_sets, st.data())
@hsettings(max_examples=150, deadline=None)
def test_any_order_with_any_duplicates_gives_the_same_months_and_tier(
    chosen: dict[int, float], data: st.DataObject
) -> None:
    readings = as_readings(chosen)
    duplicated = readings + data.draw(st.lists(st.sampled_from(readings), max_size=20))
    shuffled = data.draw(st.permutations(duplicated))
    assert fold(shuffled) == fold(readings)


@given(reading_sets, st.data())
@hsettings(max_examples=100, deadline=None)
def test_a_correction_replaces_whatever_came_before(
    chosen: dict[int, float], data: st.DataObject
) -> None:
    slot = data.draw(st.sampled_from(sorted(chosen)))
    wrong = data.draw(values)
    first = as_readings({**chosen, slot: wrong})
    corrected = as_readings({slot: chosen[slot]})
    assert fold(first + corrected) == fold(as_readings(chosen))


counts = st.integers(min_value=0, max_value=10_000)
rates = st.floats(min_value=0, max_value=1)


@given(counts, counts, rates, rates, counts, counts)
def test_ts_rises_with_live_users_and_good_reviews_and_falls_with_unsubscribes(
    sr1: int, sr2: int, hl1: float, hl2: float, tr1: int, tc: int
) -> None:
    p = SETTINGS.packages
    low_sr, high_sr = sorted((sr1, sr2))
    low_hl, high_hl = sorted((hl1, hl2))
    assert usage_value(low_sr, hl1, tr1, tc, p) <= usage_value(high_sr, hl1, tr1, tc, p)
    assert usage_value(sr1, low_hl, tr1, tc, p) <= usage_value(sr1, high_hl, tr1, tc, p)
    assert usage_value(sr1, hl1, tr1 + 1, tc, p) < usage_value(sr1, hl1, tr1, tc, p)
