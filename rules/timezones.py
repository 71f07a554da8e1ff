"""Time zones and local calendar months, on event time in epoch milliseconds.

A month is identified by an integer index ``year * 12 + (month - 1)``. Month
boundaries are found as real instants in the zone, so days of 23 or 25 hours and
zones whose daylight-saving change falls at midnight (America/Asuncion) give the
right month lengths.
"""

from __future__ import annotations

import bisect
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["MonthCalendar", "calendar_for", "month_label", "parse_zone"]

_OFFSET = re.compile(r"^(?:UTC)?([+-])([0-9]{1,2}):?([0-5][0-9])?$", re.ASCII)
_FIRST_YEAR = 1970
_LAST_YEAR = 2200


def parse_zone(name: str) -> tzinfo:
    """An IANA zone name or a fixed offset such as ``+10:00`` as a tzinfo."""
    if name.upper() in ("UTC", "Z"):
        return UTC
    match = _OFFSET.match(name)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=18):
            raise ValueError(f"offset {name!r} is beyond +-18:00")
        return timezone(-delta if sign == "-" else delta)
    if len(name) > 64 or not name.isascii():
        raise ValueError(f"unknown time zone {name[:64]!r}, expected an IANA name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}, expected an IANA name such as "
            "Europe/Berlin or an offset such as +10:00"
        ) from exc


def month_label(index: int) -> str:
    """``2024-02`` for the month index of February 2024."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class MonthCalendar:
    """Local calendar months of one zone: which month an instant is in, and bounds."""

    __slots__ = ("_starts", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        # Start instant (ms) of every month from 1970 to 2200, index 0 = Jan 1970.
        self._starts = [
            _month_start_ms(year, month, zone)
            for year in range(_FIRST_YEAR, _LAST_YEAR + 1)
            for month in range(1, 13)
        ]

    def month_of(self, at_ms: int) -> int:
        """The month index of the instant ``at_ms`` in local time."""
        position = bisect.bisect_right(self._starts, at_ms) - 1
        if position < 0 or position >= len(self._starts) - 1:
            local = datetime.fromtimestamp(at_ms / 1000, self.zone)
            return local.year * 12 + local.month - 1
        return _FIRST_YEAR * 12 + position

    def bounds(self, index: int) -> tuple[int, int]:
        """Start and end instants (ms, end exclusive) of month ``index``."""
        position = index - _FIRST_YEAR * 12
        if 0 <= position < len(self._starts) - 1:
            return self._starts[position], self._starts[position + 1]
        year, month = divmod(index, 12)
        nyear, nmonth = divmod(index + 1, 12)
        return (
            _month_start_ms(year, month + 1, self.zone),
            _month_start_ms(nyear, nmonth + 1, self.zone),
        )


def _month_start_ms(year: int, month: int, zone: tzinfo) -> int:
    # fold=0 gives a midnight inside a spring-forward gap the offset from before
    # the change, which lands exactly on the transition: the first instant of the
    # new local day. An ambiguous midnight takes its first occurrence.
    start = datetime(year, month, 1, tzinfo=zone)
    return int(start.timestamp() * 1000)


@lru_cache(maxsize=64)
def calendar_for(zone_name: str) -> MonthCalendar:
    """The shared calendar of a zone name (built once, about 3,000 boundaries)."""
    return MonthCalendar(parse_zone(zone_name))
