from __future__ import annotations

from models.events import RegisterReading
from rules.consumption import CustomerState, book_meter_message, month_views
from rules.ledger import MemoryLedger
from tests.helpers import make_settings, ms


class Register:
    def __init__(self) -> None:
        self.settings = make_settings()
        self.state = CustomerState("c1")
        self.ledger = MemoryLedger()
        self.suspects: list[int] = []

    def read(self, at: str, total: float, maximum: float | None = None) -> None:
        reading = RegisterReading("c1", "reg", ms(at), total, maximum, "residential")
        booking = book_meter_message(self.state, reading, self.ledger, self.settings)
        self.suspects += [notice.at_ms for notice in booking.notices]

    def months(self) -> dict[str, float]:
        return {
            v.label: round(v.kwh, 6) for v in month_views(self.state, self.settings)
        }


def test_steps_are_booked_to_the_month_of_the_later_reading() -> None:
    meter = Register()
    meter.read("2024-01-31T12:00:00+00:00", 1000)
    meter.read("2024-02-01T12:00:00+00:00", 1010)
    meter.read("2024-02-02T12:00:00+00:00", 1025)
    assert meter.months() == {"2024-02": 25.0}


def test_a_drop_with_a_declared_maximum_is_a_rollover() -> None:
    meter = Register()
    meter.read("2024-02-01T00:00:00+00:00", 99_990, maximum=100_000)
    meter.read("2024-02-02T00:00:00+00:00", 15, maximum=100_000)
    assert meter.months() == {"2024-02": 25.0}
    assert meter.suspects == []


def test_a_drop_without_a_maximum_is_not_booked_and_is_suspect() -> None:
    meter = Register()
    meter.read("2024-02-01T00:00:00+00:00", 5000)
    meter.read("2024-02-02T00:00:00+00:00", 4000)
    assert meter.months() == {}
    assert meter.suspects == [ms("2024-02-02T00:00:00+00:00")]


def test_a_momentary_zero_makes_no_spike_afterwards() -> None:
    meter = Register()
    meter.read("2024-02-01T00:00:00+00:00", 5000)
    meter.read("2024-02-02T00:00:00+00:00", 0)
    meter.read("2024-02-03T00:00:00+00:00", 5012)
    assert meter.months() == {"2024-02": 12.0}


def test_a_real_reset_counts_on_from_the_dropped_reading() -> None:
    meter = Register()
    meter.read("2024-02-01T00:00:00+00:00", 5000)
    meter.read("2024-02-02T00:00:00+00:00", 0)
    meter.read("2024-02-03T00:00:00+00:00", 7)
    meter.read("2024-02-04T00:00:00+00:00", 10)
    assert meter.months() == {"2024-02": 10.0}


def test_out_of_order_register_readings_give_the_in_order_result() -> None:
    in_order, shuffled = Register(), Register()
    readings = [
        ("2024-02-01T00:00:00+00:00", 100.0),
        ("2024-02-10T00:00:00+00:00", 130.0),
        ("2024-02-20T00:00:00+00:00", 0.0),
        ("2024-03-02T00:00:00+00:00", 180.0),
        ("2024-03-05T00:00:00+00:00", 200.0),
    ]
    for at, total in readings:
        in_order.read(at, total)
    for at, total in reversed(readings):
        shuffled.read(at, total)
    shuffled.read(*readings[1])  # a duplicate changes nothing
    assert shuffled.months() == in_order.months() == {"2024-02": 30.0, "2024-03": 70.0}


def test_a_corrected_register_reading_rebooks_its_steps() -> None:
    meter = Register()
    meter.read("2024-02-01T00:00:00+00:00", 100)
    meter.read("2024-02-10T00:00:00+00:00", 130)
    meter.read("2024-03-10T00:00:00+00:00", 150)
    meter.read("2024-02-10T00:00:00+00:00", 120)
    assert meter.months() == {"2024-02": 20.0, "2024-03": 30.0}
