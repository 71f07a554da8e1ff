"""Monthly consumption of a customer: booking readings, closing months, the tier.

A customer's state holds the months of the analysis window (the month of their
latest reading and ``readings.window_months`` before it) as whole milliwatt-hours
and covered milliseconds per meter. The readings themselves, needed to make
duplicates and corrections exact, live in the ledger (``rules.ledger``); both are
pruned as the window moves, so the state stays bounded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from models.events import (
    MWH_PER_KWH,
    IntervalBlock,
    IntervalReading,
    MeterMessage,
    RegisterReading,
    Rejection,
    SuspectReading,
    to_kwh,
    to_mwh,
)
from rules.ledger import (
    DAY_MS,
    IntervalBucket,
    LedgerStore,
    RegisterLedger,
    bucket_key,
    register_key,
)
from rules.timezones import MonthCalendar, calendar_for, month_label

# A month is never longer than this; with the month's end it tells cheaply whether
# an instant is still inside the month looked up last.
_MONTH_SPAN_MS = 27 * DAY_MS

__all__ = [
    "Booking",
    "CustomerState",
    "MonthView",
    "TierResult",
    "analyze_tier",
    "book_meter_message",
    "month_views",
]


@dataclass(slots=True)
class CustomerState:
    """Everything the product keeps about one customer; a Faust table value."""

    customer_id: str
    customer_type: str | None = None
    zone: str | None = None
    watermark_ms: int | None = None
    # month index -> [mWh, {meter: covered ms}]
    months: dict[int, list[Any]] = field(default_factory=dict)
    # meter -> oldest UTC day with a ledger bucket (to delete buckets as the
    # window moves) or -1 for a register meter
    meters: dict[str, int] = field(default_factory=dict)
    tier: int | None = None
    tier_on_record: int | None = None
    package_on_record: str | None = None
    pending: dict[str, Any] | None = None
    declined_package: str | None = None
    gap_tier: int | None = None
    recommendation_seq: int = 0
    last_decision: str | None = None
    # source "topic:partition" -> last offset applied to this state (streaming)
    applied: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "customer_type": self.customer_type,
            "zone": self.zone,
            "watermark_ms": self.watermark_ms,
            "months": {str(m): v for m, v in self.months.items()},
            "meters": self.meters,
            "tier": self.tier,
            "tier_on_record": self.tier_on_record,
            "package_on_record": self.package_on_record,
            "pending": self.pending,
            "declined_package": self.declined_package,
            "gap_tier": self.gap_tier,
            "recommendation_seq": self.recommendation_seq,
            "last_decision": self.last_decision,
            "applied": self.applied,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CustomerState:
        fields = dict(data)
        fields["months"] = {int(m): v for m, v in data.get("months", {}).items()}
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class MonthView:
    """A month as the analysis sees it."""

    month: int
    mwh: int
    coverage: float
    closed: bool
    counted: bool
    band: int | None

    @property
    def label(self) -> str:
        return month_label(self.month)

    @property
    def kwh(self) -> float:
        return to_kwh(self.mwh)


@dataclass(frozen=True, slots=True)
class TierResult:
    tier: int | None
    band_counts: dict[str, int]
    months: list[str]


@dataclass(slots=True)
class Booking:
    """What booking one meter message did."""

    rejections: list[Rejection] = field(default_factory=list)
    notices: list[SuspectReading] = field(default_factory=list)
    # months that left the window, with their final view (for offline analysis)
    retired: list[MonthView] = field(default_factory=list)
    changed: bool = False


def calendar_of(state: CustomerState, settings: Settings) -> MonthCalendar:
    return calendar_for(state.zone or settings.timezone)


def book_meter_message(
    state: CustomerState, message: MeterMessage, ledger: LedgerStore, settings: Settings
) -> Booking:
    """Book a reading or an interval block into the customer's months."""
    booking = Booking()
    if state.customer_type is None and message.customer_type is not None:
        state.customer_type = message.customer_type
    if state.zone is None:
        state.zone = settings.timezone
    calendar = calendar_of(state, settings)
    if isinstance(message, RegisterReading):
        _book_register(state, message, ledger, calendar, settings, booking)
    else:
        _book_intervals(state, message, ledger, calendar, settings, booking)
    _retire(state, ledger, calendar, settings, booking)
    return booking


def _window_start(
    state: CustomerState, calendar: MonthCalendar, settings: Settings
) -> int | None:
    if state.watermark_ms is None:
        return None
    return calendar.month_of(state.watermark_ms) - settings.readings.window_months


def _intervals(message: IntervalReading | IntervalBlock) -> list[tuple[int, int, int]]:
    """(start ms, duration ms, mWh) of every non-missing interval in a message."""
    if isinstance(message, IntervalReading):
        return [
            (message.start_ms, message.end_ms - message.start_ms, to_mwh(message.kwh))
        ]
    step, first = message.interval_ms, message.start_ms
    return [
        (first + slot * step, step, round(kwh * MWH_PER_KWH))
        for slot, kwh in enumerate(message.values)
        if kwh is not None
    ]


def _book_intervals(
    state: CustomerState,
    message: IntervalReading | IntervalBlock,
    ledger: LedgerStore,
    calendar: MonthCalendar,
    settings: Settings,
    booking: Booking,
) -> None:
    """Book interval readings; one ledger bucket per meter and UTC day touched.

    A block is usually one meter-day, so the month and bucket of its readings are
    looked up once per boundary crossed rather than once per reading.
    """
    meter = message.meter_id
    first_month = _window_start(state, calendar, settings)
    by_day: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
    too_late = 0
    month, month_end, latest = -1, -1, -1
    for start, duration, mwh in _intervals(message):
        if not (month_end > start >= month_end - _MONTH_SPAN_MS and start >= latest):
            month = calendar.month_of(start)
            month_end = calendar.bounds(month)[1]
        latest = start
        if first_month is not None and month < first_month:
            too_late += 1
            continue
        by_day[start // DAY_MS].append((start, duration, mwh, month))
    if too_late:
        booking.rejections.append(
            Rejection("too_late", "start", "older than the analysis window", too_late)
        )
    for day, items in by_day.items():
        key = bucket_key(state.customer_id, meter, day)
        bucket = IntervalBucket.from_json(ledger.get(key))
        changes: dict[int, list[int]] = {}
        for start, duration, mwh, in_month in items:
            d_mwh, d_cov = bucket.apply(start, mwh, duration)
            if d_mwh or d_cov:
                change = changes.setdefault(in_month, [0, 0])
                change[0] += d_mwh
                change[1] += d_cov
            _advance(state, start)
        for in_month, (d_mwh, d_cov) in changes.items():
            _add(state, in_month, meter, d_mwh, d_cov)
        if changes:
            ledger.put(key, bucket.to_json())
            booking.changed = True
        oldest = state.meters.get(meter)
        if oldest is None or day < oldest:
            state.meters[meter] = day


def _book_register(
    state: CustomerState,
    reading: RegisterReading,
    ledger: LedgerStore,
    calendar: MonthCalendar,
    settings: Settings,
    booking: Booking,
) -> None:
    first_month = _window_start(state, calendar, settings)
    if first_month is not None and calendar.month_of(reading.at_ms) < first_month:
        booking.rejections.append(
            Rejection("too_late", "at", "older than the analysis window")
        )
        return
    key = register_key(state.customer_id, reading.meter_id)
    register = RegisterLedger.from_json(ledger.get(key))
    max_mwh = None if reading.register_max is None else to_mwh(reading.register_max)
    changes, suspect = register.apply(
        reading.at_ms, to_mwh(reading.register_kwh), max_mwh, calendar
    )
    for month, (d_mwh, d_cov) in changes.items():
        if first_month is None or month >= first_month:
            _add(state, month, reading.meter_id, d_mwh, d_cov)
    if suspect:
        booking.notices.append(
            SuspectReading(state.customer_id, reading.meter_id, reading.at_ms)
        )
    ledger.put(key, register.to_json())
    state.meters[reading.meter_id] = -1
    _advance(state, reading.at_ms)
    booking.changed = booking.changed or bool(changes)


def _add(state: CustomerState, month: int, meter: str, d_mwh: int, d_cov: int) -> None:
    entry = state.months.setdefault(month, [0, {}])
    entry[0] += d_mwh
    entry[1][meter] = entry[1].get(meter, 0) + d_cov


def _advance(state: CustomerState, at_ms: int) -> None:
    if state.watermark_ms is None or at_ms > state.watermark_ms:
        state.watermark_ms = at_ms


def _retire(
    state: CustomerState,
    ledger: LedgerStore,
    calendar: MonthCalendar,
    settings: Settings,
    booking: Booking,
) -> None:
    """Drop months, buckets and register readings that left the window."""
    first_month = _window_start(state, calendar, settings)
    if first_month is None:
        return
    old = sorted(m for m in state.months if m < first_month)
    if not old:
        return
    views = {v.month: v for v in month_views(state, settings)}
    for month in old:
        booking.retired.append(views[month])
        del state.months[month]
    window_start_ms = calendar.bounds(first_month)[0]
    first_day = window_start_ms // DAY_MS
    for meter, oldest in state.meters.items():
        if oldest == -1:
            key = register_key(state.customer_id, meter)
            register = RegisterLedger.from_json(ledger.get(key))
            register.prune(window_start_ms, first_month)
            ledger.put(key, register.to_json())
            continue
        # The bucket of the window's first UTC day may still hold readings of
        # the month before; it goes with the next month that leaves.
        for day in range(oldest, first_day):
            ledger.delete(bucket_key(state.customer_id, meter, day))
        state.meters[meter] = max(oldest, first_day)


def month_views(state: CustomerState, settings: Settings) -> list[MonthView]:
    """The customer's months, oldest first, with closing, coverage and band."""
    calendar = calendar_of(state, settings)
    grace_ms = round(settings.readings.grace_days * DAY_MS)
    bands = settings.bands.get(state.customer_type or "")
    views = []
    for month in sorted(state.months):
        mwh, cover = state.months[month]
        start, end = calendar.bounds(month)
        coverage = min(cover.values(), default=0) / (end - start)
        closed = state.watermark_ms is not None and state.watermark_ms > end + grace_ms
        counted = closed and coverage >= settings.readings.min_coverage
        band = bands.band_of(to_kwh(mwh)) if bands is not None else None
        views.append(MonthView(month, mwh, coverage, closed, counted, band))
    return views


def analyze_tier(views: list[MonthView], settings: Settings) -> TierResult:
    """The tier from the last N closed, counted months; ties go to the latest."""
    counted = [v for v in reversed(views) if v.counted][: settings.tier.months]
    counts = {"1": 0, "2": 0, "3": 0}
    for view in counted:
        if view.band is not None:
            counts[str(view.band)] += 1
    labels = [v.label for v in reversed(counted)]
    best = max(counts.values())
    if len(counted) < settings.tier.min_months or best == 0:
        return TierResult(None, counts, labels)
    tied = {int(band) for band, n in counts.items() if n == best}
    tier = next(v.band for v in counted if v.band in tied)
    return TierResult(tier, counts, labels)
