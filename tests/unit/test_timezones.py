from __future__ import annotations

import pytest

from rules.timezones import calendar_for, month_label, parse_zone
from tests.helpers import ms

HOUR = 3_600_000


def test_berlin_march_has_a_23_hour_day_and_october_a_25_hour_day() -> None:
    berlin = calendar_for("Europe/Berlin")
    start, end = berlin.bounds(2024 * 12 + 2)
    assert (end - start) == (31 * 24 - 1) * HOUR
    start, end = berlin.bounds(2024 * 12 + 9)
    assert (end - start) == (31 * 24 + 1) * HOUR
    assert start == ms("2024-09-30T22:00:00+00:00")


def test_asuncion_october_2017_starts_at_the_midnight_change() -> None:
    # Paraguay moved clocks from 00:00 to 01:00 on 1 October 2017.
    asuncion = calendar_for("America/Asuncion")
    start, end = asuncion.bounds(2017 * 12 + 9)
    assert start == ms("2017-10-01T04:00:00+00:00")
    assert end == ms("2017-11-01T03:00:00+00:00")
    assert asuncion.month_of(start - 1) == 2017 * 12 + 8
    assert asuncion.month_of(start) == 2017 * 12 + 9


def test_a_reading_late_on_31_january_utc_belongs_to_february_in_amsterdam() -> None:
    amsterdam = calendar_for("Europe/Amsterdam")
    assert month_label(amsterdam.month_of(ms("2024-01-31T23:30:00+00:00"))) == "2024-02"


@pytest.mark.parametrize(
    ("month", "days"),
    [("2023-02", 28), ("2024-02", 29), ("2024-04", 30), ("2024-01", 31)],
)
def test_month_lengths_in_a_fixed_offset(month: str, days: int) -> None:
    year, number = (int(p) for p in month.split("-"))
    start, end = calendar_for("+10:00").bounds(year * 12 + number - 1)
    assert end - start == days * 24 * HOUR
    assert start == ms(f"{month}-01T00:00:00+10:00")


def test_unknown_zone_names_what_was_expected() -> None:
    with pytest.raises(ValueError, match="expected an IANA name"):
        parse_zone("Europe/Atlantis")
    with pytest.raises(ValueError, match="beyond"):
        parse_zone("+19:00")
