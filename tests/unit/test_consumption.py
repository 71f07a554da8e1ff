from __future__ import annotations

from calendar import monthrange

import pytest

from config import Settings
from models.events import IntervalBlock, IntervalReading, MeterMessage, to_mwh
from rules.consumption import (
    CustomerState,
    analyze_tier,
    book_meter_message,
    month_views,
)
from rules.ledger import MemoryLedger
from tests.helpers import make_settings, ms

HALF_HOUR = 1_800_000
DAY = 86_400_000


def month_of_days(
    customer: str, year: int, month: int, kwh_per_day: float, days: int | None = None
) -> list[IntervalBlock]:
    """One block of 48 half-hours a day, from the 1st, in UTC."""
    count = days if days is not None else monthrange(year, month)[1]
    first = ms(f"{year:04d}-{month:02d}-01T00:00:00+00:00")
    return [
        IntervalBlock(
            customer,
            "m1",
            first + d * DAY,
            HALF_HOUR,
            (kwh_per_day / 48,) * 48,
            "residential",
        )
        for d in range(count)
    ]


class Customer:
    def __init__(
        self, settings: Settings | None = None, customer_id: str = "c1"
    ) -> None:
        self.settings = settings or make_settings()
        self.state = CustomerState(customer_id)
        self.ledger = MemoryLedger()
        self.rejected: dict[str, int] = {}

    def feed(self, *messages: MeterMessage) -> None:
        for message in messages:
            booking = book_meter_message(
                self.state, message, self.ledger, self.settings
            )
            for rejection in booking.rejections:
                self.rejected[rejection.reason] = (
                    self.rejected.get(rejection.reason, 0) + rejection.count
                )

    def months(self) -> dict[str, float]:
        return {
            v.label: round(v.kwh, 6) for v in month_views(self.state, self.settings)
        }

    def views(self) -> dict[str, object]:
        return {v.label: v for v in month_views(self.state, self.settings)}

    def tier(self) -> int | None:
        return analyze_tier(month_views(self.state, self.settings), self.settings).tier


def reading(start: str, kwh: float, customer: str = "c1") -> IntervalReading:
    at = ms(start)
    return IntervalReading(customer, "m1", at, at + HALF_HOUR, kwh, "residential")


def test_a_duplicate_reading_leaves_the_month_unchanged() -> None:
    customer = Customer()
    customer.feed(reading("2024-03-05T10:00:00+00:00", 1.5))
    customer.feed(reading("2024-03-05T10:00:00+00:00", 1.5))
    assert customer.months() == {"2024-03": 1.5}


def test_a_correction_replaces_the_earlier_value() -> None:
    customer = Customer()
    customer.feed(
        reading("2024-03-05T10:00:00+00:00", 1.5),
        reading("2024-03-05T10:30:00+00:00", 1.0),
    )
    customer.feed(reading("2024-03-05T10:00:00+00:00", 0.25))
    assert customer.months() == {"2024-03": 1.25}


def test_a_block_books_exactly_like_its_readings_sent_one_by_one() -> None:
    block = IntervalBlock(
        "c1",
        "m1",
        ms("2024-03-31T22:00:00+00:00"),
        HALF_HOUR,
        (1.0, None, 2.0, 3.0, 4.0, 5.0),
        "residential",
    )
    by_block, one_by_one = Customer(), Customer()
    by_block.feed(block)
    one_by_one.feed(*block.expand())
    # 22:00, 23:00 and 23:30 UTC are in March (22:30 is missing), the rest April
    assert by_block.months() == one_by_one.months() == {"2024-03": 6.0, "2024-04": 9.0}
    # and a single reading repeating one of the block's is a duplicate
    by_block.feed(block.expand()[0])
    assert by_block.months() == {"2024-03": 6.0, "2024-04": 9.0}


def test_a_month_closes_only_after_the_grace_period() -> None:
    customer = Customer()
    customer.feed(*month_of_days("c1", 2024, 3, 10.0))
    customer.feed(reading("2024-04-03T23:30:00+00:00", 0.1))
    assert not customer.views()["2024-03"].closed  # type: ignore[attr-defined]
    customer.feed(reading("2024-04-04T00:30:00+00:00", 0.1))
    assert customer.views()["2024-03"].closed  # type: ignore[attr-defined]


def test_a_partial_month_is_closed_but_not_counted() -> None:
    customer = Customer()
    customer.feed(*month_of_days("c1", 2024, 2, 10.0, days=26))  # 26/29 = 0.897
    customer.feed(*month_of_days("c1", 2024, 3, 10.0, days=28))  # 28/31 = 0.903
    customer.feed(reading("2024-04-10T00:00:00+00:00", 0.1))
    views = customer.views()
    assert views["2024-02"].closed and not views["2024-02"].counted  # type: ignore[attr-defined]
    assert views["2024-03"].counted  # type: ignore[attr-defined]


def test_coverage_uses_the_real_length_of_a_dst_month() -> None:
    # Berlin's March 2024 has 743 hours; 48 half-hours a day would overstate it.
    customer = Customer(make_settings(**{"time.timezone": "Europe/Berlin"}))
    start = ms("2024-02-29T23:00:00+00:00")
    values = (0.1,) * (743 * 2)
    customer.feed(
        IntervalBlock("c1", "m1", start, HALF_HOUR, values[:4000], "residential")
    )
    view = customer.views()["2024-03"]
    assert view.coverage == 1.0  # type: ignore[attr-defined]
    assert round(view.kwh, 6) == round(0.1 * 743 * 2, 6)  # type: ignore[attr-defined]


def feed_year(customer: Customer, monthly: list[float], year: int = 2023) -> None:
    for index, kwh in enumerate(monthly):
        y, m = divmod(index, 12)
        customer.feed(
            *month_of_days("c1", year + y, m + 1, kwh / monthrange(year + y, m + 1)[1])
        )
    months = len(monthly)
    y, m = divmod(months, 12)
    customer.feed(reading(f"{year + y:04d}-{m + 1:02d}-10T00:00:00+00:00", 0.0))


def test_the_tier_is_the_band_with_most_months() -> None:
    customer = Customer()  # residential: band1 >= 500, band2 [200, 500), band3 < 200
    feed_year(customer, [600, 300, 300, 100, 300, 600])
    assert customer.tier() == 2


def test_a_tie_goes_to_the_band_of_the_most_recent_tied_month() -> None:
    customer = Customer()
    feed_year(customer, [600, 300, 600, 300])
    assert customer.tier() == 2
    other = Customer()
    feed_year(other, [300, 600, 300, 600])
    assert other.tier() == 1


def test_fewer_counted_months_than_the_minimum_give_no_tier() -> None:
    customer = Customer()
    feed_year(customer, [600, 600])
    assert customer.tier() is None
    result = analyze_tier(
        month_views(customer.state, customer.settings), customer.settings
    )
    assert result.band_counts == {"1": 2, "2": 0, "3": 0}


def test_only_the_last_n_months_count() -> None:
    customer = Customer(make_settings(**{"tier.months": 3}))
    feed_year(customer, [600, 600, 600, 100, 100, 300])
    assert customer.tier() == 3


def test_a_late_reading_for_a_closed_month_updates_band_and_tier() -> None:
    customer = Customer()
    feed_year(customer, [100, 100, 100, 300])
    assert customer.tier() == 3
    slot = 100 / 28 / 48
    customer.feed(reading("2023-02-14T10:00:00+00:00", 150.0))  # corrects one slot
    # slots are booked in whole mWh, so the sum differs from the float by < 1 Wh
    assert customer.months()["2023-02"] == pytest.approx(100 - slot + 150, abs=1e-3)
    assert customer.views()["2023-02"].band == 2  # type: ignore[attr-defined]
    # two months in band 3, two in band 2: the tie goes to April's band 2
    assert customer.tier() == 2


def test_readings_older_than_the_window_are_too_late_and_state_stays_bounded() -> None:
    customer = Customer(make_settings(**{"readings.window_months": 12}))
    feed_year(customer, [300] * 24, year=2022)
    assert len(customer.state.months) <= 13
    assert min(customer.months()) == "2023-01"
    bucket_days = {int(k.rsplit("|", 1)[1]) for k in customer.ledger.values}
    assert min(bucket_days) >= ms("2022-12-31T00:00:00+00:00") // DAY
    customer.feed(reading("2022-06-01T00:00:00+00:00", 5.0))
    assert customer.rejected == {"too_late": 1}
    assert "2022-06" not in customer.months()


def test_energy_is_kept_in_whole_milliwatt_hours() -> None:
    assert to_mwh(0.1) + to_mwh(0.2) == to_mwh(0.3)
