"""The readings a customer has sent, kept exactly enough to make duplicates and
corrections exact: interval readings by identity, register readings by meter.

Interval readings live in buckets of one meter and one UTC day, so one message
(typically a meter-day) touches one or two small values, which is what a Faust
table row should be. Register readings of one meter live in one value with the
steps already booked, so a late reading only re-books what it changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rules.timezones import MonthCalendar

__all__ = [
    "DAY_MS",
    "IntervalBucket",
    "LedgerStore",
    "MemoryLedger",
    "RegisterLedger",
    "bucket_key",
    "register_key",
]

DAY_MS = 86_400_000


class LedgerStore(Protocol):
    """Where ledger values are kept: a dict offline, a Faust table when streaming."""

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryLedger:
    """A ledger store in a plain dict, for ``analyze`` and the tests."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def bucket_key(customer_id: str, meter_id: str, day: int) -> str:
    # Ids are length-prefixed: "a|b" + "c" and "a" + "b|c" must not meet.
    return f"i|{len(customer_id)}:{customer_id}|{len(meter_id)}:{meter_id}|{day}"


def register_key(customer_id: str, meter_id: str) -> str:
    return f"r|{len(customer_id)}:{customer_id}|{len(meter_id)}:{meter_id}"


@dataclass(slots=True)
class IntervalBucket:
    """Interval readings of one meter whose start falls on one UTC day."""

    # start_ms -> (mWh, duration_ms)
    readings: dict[int, tuple[int, int]] = field(default_factory=dict)

    def apply(self, start_ms: int, mwh: int, duration_ms: int) -> tuple[int, int]:
        """Store a reading; the change it makes to (mWh, covered ms)."""
        old = self.readings.get(start_ms)
        if old == (mwh, duration_ms):
            return 0, 0
        self.readings[start_ms] = (mwh, duration_ms)
        if old is None:
            return mwh, duration_ms
        return mwh - old[0], duration_ms - old[1]

    def to_json(self) -> list[list[int]]:
        return [[start, mwh, dur] for start, (mwh, dur) in self.readings.items()]

    @classmethod
    def from_json(cls, data: Iterable[list[int]] | None) -> IntervalBucket:
        return cls({start: (mwh, dur) for start, mwh, dur in data or ()})


@dataclass(frozen=True, slots=True)
class Step:
    """One booked register step: consumption since the previous good reading."""

    at_ms: int
    mwh: int
    covered_ms: int


@dataclass(slots=True)
class _Chain:
    """Where a register's chain of readings stands after its last reading."""

    good_at: int | None = None
    good_mwh: int = 0
    drop_at: int | None = None
    drop_mwh: int = 0


@dataclass(slots=True)
class RegisterLedger:
    """A cumulative register's readings in the window and what they booked.

    A drop with a declared maximum is a rollover. A drop without one is a reset
    or a glitch: its step is not booked and the reading is suspect. The next
    reading decides which it was: back at or above the last good total, it was
    a glitch and the step is taken from the last good reading (so a momentary
    zero makes no spike); below it again, the meter was reset and counting goes
    on from the dropped reading.
    """

    # sorted [at_ms, register mWh, declared max mWh or None]
    readings: list[tuple[int, int, int | None]] = field(default_factory=list)
    # month index -> [mWh, covered ms] booked by this meter
    booked: dict[int, list[int]] = field(default_factory=dict)
    suspects: set[int] = field(default_factory=set)
    tail: _Chain = field(default_factory=_Chain)

    def apply(
        self, at_ms: int, mwh: int, max_mwh: int | None, calendar: MonthCalendar
    ) -> tuple[dict[int, list[int]], bool]:
        """Store a reading; per-month changes it makes, and whether it is suspect."""
        position = bisect.bisect_left(self.readings, (at_ms,))
        existing = self.readings[position] if position < len(self.readings) else None
        if existing is not None and existing[0] == at_ms:
            if existing[1:] == (mwh, max_mwh):
                return {}, False
            self.readings[position] = (at_ms, mwh, max_mwh)
        else:
            self.readings.insert(position, (at_ms, mwh, max_mwh))
        if position == len(self.readings) - 1 and existing is None:
            steps, suspects = _chain(self.readings[-1:], self.tail)
            new_booked = _add_steps(
                {k: list(v) for k, v in self.booked.items()}, steps, calendar
            )
            self.suspects |= suspects
        else:
            self.tail = _Chain()
            steps, self.suspects = _chain(self.readings, self.tail)
            new_booked = _add_steps({}, steps, calendar)
        changes = _diff(self.booked, new_booked)
        self.booked = new_booked
        return changes, at_ms in self.suspects

    def prune(self, before_ms: int, first_month: int) -> None:
        """Forget readings before ``before_ms``, keeping one as the baseline."""
        cut = bisect.bisect_left(self.readings, (before_ms,))
        if cut > 1:
            del self.readings[: cut - 1]
        self.booked = {m: v for m, v in self.booked.items() if m >= first_month}
        self.suspects = {at for at in self.suspects if at >= before_ms}

    def to_json(self) -> dict[str, Any]:
        return {
            "r": [list(r) for r in self.readings],
            "b": {str(m): v for m, v in self.booked.items()},
            "s": sorted(self.suspects),
            "t": [
                self.tail.good_at,
                self.tail.good_mwh,
                self.tail.drop_at,
                self.tail.drop_mwh,
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RegisterLedger:
        if not data:
            return cls()
        good_at, good_mwh, drop_at, drop_mwh = data["t"]
        return cls(
            [(r[0], r[1], r[2]) for r in data["r"]],
            {int(m): list(v) for m, v in data["b"].items()},
            set(data["s"]),
            _Chain(good_at, good_mwh, drop_at, drop_mwh),
        )


def _chain(
    readings: Iterable[tuple[int, int, int | None]], state: _Chain
) -> tuple[list[Step], set[int]]:
    """Walk readings in time order from ``state`` (updated in place)."""
    steps: list[Step] = []
    suspects: set[int] = set()
    for at, total, max_mwh in readings:
        if state.good_at is None:
            state.good_at, state.good_mwh = at, total
            continue
        if total >= state.good_mwh:
            steps.append(Step(at, total - state.good_mwh, at - state.good_at))
        elif max_mwh is not None:
            steps.append(Step(at, max_mwh - state.good_mwh + total, at - state.good_at))
        elif state.drop_at is not None and total >= state.drop_mwh:
            steps.append(Step(at, total - state.drop_mwh, at - state.drop_at))
        else:
            suspects.add(at)
            state.drop_at, state.drop_mwh = at, total
            continue
        state.good_at, state.good_mwh = at, total
        state.drop_at = None
    return steps, suspects


def _add_steps(
    booked: dict[int, list[int]], steps: list[Step], calendar: MonthCalendar
) -> dict[int, list[int]]:
    for step in steps:
        entry = booked.setdefault(calendar.month_of(step.at_ms), [0, 0])
        entry[0] += step.mwh
        entry[1] += step.covered_ms
    return booked


def _diff(old: dict[int, list[int]], new: dict[int, list[int]]) -> dict[int, list[int]]:
    changes: dict[int, list[int]] = {}
    for month in old.keys() | new.keys():
        before = old.get(month, [0, 0])
        after = new.get(month, [0, 0])
        if before != after:
            changes[month] = [after[0] - before[0], after[1] - before[1]]
    return changes
