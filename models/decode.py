"""Bytes and rows into events, or a ``Rejection`` with a machine-readable reason.

Reasons: ``bad_json``, ``not_an_object``, ``missing_field``, ``wrong_type``,
``not_finite``, ``negative_kwh``, ``bad_value``, ``unknown_customer_type``,
``unknown_kind``, ``bad_timestamp``, ``nonexistent_local_time``,
``ambiguous_local_time``, ``end_before_start``, ``too_many_values``. Unknown extra
fields are ignored. Nothing here raises on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

import orjson

from models.events import (
    CampaignCommand,
    CatalogEntry,
    CustomerRecord,
    IntervalBlock,
    IntervalReading,
    MeterMessage,
    PackageEvent,
    RegisterReading,
    Rejection,
    SwitchDecision,
)
from rules.timezones import parse_zone

__all__ = [
    "CUSTOMER_TYPES",
    "MAX_BLOCK_VALUES",
    "InputRejected",
    "decode_campaign_command",
    "decode_catalog_entry",
    "decode_customer",
    "decode_meter_message",
    "decode_package_event",
    "decode_switch_decision",
    "parse_instant",
]

CUSTOMER_TYPES = frozenset({"primary", "secondary", "tertiary", "residential"})
PACKAGE_EVENT_KINDS = frozenset({"subscribe", "unsubscribe", "review", "push"})
# A month of 5-minute values; anything longer is more likely a broken producer.
MAX_BLOCK_VALUES = 9000
# Instants the month calendar covers (1970 to 2200); outside is a broken clock.
EARLIEST_MS = 0
LATEST_MS = 7_258_118_400_000
# No meter books a GWh in one interval, and no register counts past 1e12 kWh;
# larger numbers are corrupt data and would overflow the mWh arithmetic.
MAX_INTERVAL_KWH = 1e6
MAX_REGISTER_KWH = 1e12
# Interval lengths head-end systems use: 1 minute to a day.
MIN_INTERVAL_MINUTES = 1
MAX_INTERVAL_MINUTES = 1440

T = TypeVar("T")


class InputRejected(Exception):
    """Raised inside decoders; callers get its ``rejection`` value."""

    def __init__(self, reason: str, field: str | None, detail: str = "") -> None:
        super().__init__(reason)
        self.rejection = Rejection(reason, field, detail)


def parse_instant(value: Any, field: str, naive_zone: tzinfo | None = None) -> int:
    """An instant as epoch ms from epoch ms or ISO-8601; raises ``InputRejected``.

    A timestamp without an offset is read in ``naive_zone``; where that zone has
    no such local time, or has it twice, the reading is refused rather than
    guessed.
    """
    if isinstance(value, bool) or value is None:
        raise InputRejected(
            "missing_field" if value is None else "bad_timestamp", field
        )
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InputRejected("not_finite", field)
        return _in_range(int(value), field)
    if not isinstance(value, str):
        raise InputRejected(
            "bad_timestamp",
            field,
            f"expected ISO-8601 or epoch ms, got {type(value).__name__}",
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputRejected(
            "bad_timestamp", field, "expected ISO-8601 with an offset"
        ) from None
    if moment.tzinfo is None:
        if naive_zone is None:
            raise InputRejected("bad_timestamp", field, "no offset given")
        moment = _localize(moment, naive_zone, field)
    return _in_range(int(moment.timestamp() * 1000), field)


def _in_range(at_ms: int, field: str) -> int:
    if not EARLIEST_MS <= at_ms < LATEST_MS:
        raise InputRejected("bad_timestamp", field, "outside 1970 to 2200")
    return at_ms


def checked_kwh(kwh: float, field: str, maximum: float = MAX_INTERVAL_KWH) -> float:
    """A consumption or register value within what a meter can report."""
    if kwh < 0:
        raise InputRejected("negative_kwh", field)
    if kwh > maximum:
        raise InputRejected("bad_value", field, f"more than {maximum:g} kWh")
    return kwh


def checked_register_max(value: float) -> float:
    if not 0 < value <= MAX_REGISTER_KWH:
        raise InputRejected("bad_value", "register_max", "expected a positive maximum")
    return value


def _localize(naive: datetime, zone: tzinfo, field: str) -> datetime:
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    # The two folds differ only around a change; a time that does not survive the
    # round trip through UTC was skipped by the clock.
    round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != naive:
        raise InputRejected(
            "nonexistent_local_time", field, "the clock skipped this time"
        )
    raise InputRejected(
        "ambiguous_local_time", field, "the clock showed this time twice"
    )


class _Fields:
    """Typed access to a decoded JSON object; every miss raises ``InputRejected``."""

    __slots__ = ("data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def text(self, name: str) -> str:
        value = self.data.get(name)
        if value is None:
            raise InputRejected("missing_field", name)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise InputRejected("wrong_type", name, "expected a non-empty string")
        return value

    def optional_text(self, name: str) -> str | None:
        return None if self.data.get(name) is None else self.text(name)

    def number(self, name: str) -> float:
        return _number(self.data.get(name), name)

    def optional_number(self, name: str) -> float | None:
        return None if self.data.get(name) is None else self.number(name)

    def instant(self, name: str) -> int:
        return parse_instant(self.data.get(name), name)

    def customer_type(self, name: str = "customer_type") -> str:
        value = self.text(name)
        if value not in CUSTOMER_TYPES:
            raise InputRejected(
                "unknown_customer_type",
                name,
                f"expected one of {sorted(CUSTOMER_TYPES)}",
            )
        return value

    def optional_customer_type(self) -> str | None:
        return None if self.data.get("customer_type") is None else self.customer_type()

    def tier(self, name: str, optional: bool = False) -> int | None:
        value = self.data.get(name)
        if value is None and optional:
            return None
        if value not in (1, 2, 3) or isinstance(value, bool):
            raise InputRejected(
                "bad_value" if value is not None else "missing_field",
                name,
                "expected 1, 2 or 3",
            )
        return int(value)

    def choice(
        self, name: str, allowed: frozenset[str], reason: str = "bad_value"
    ) -> str:
        value = self.text(name)
        if value not in allowed:
            raise InputRejected(reason, name, f"expected one of {sorted(allowed)}")
        return value


def _number(value: Any, name: str) -> float:
    if value is None:
        raise InputRejected("missing_field", name)
    if isinstance(value, bool):
        raise InputRejected("wrong_type", name, "expected a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputRejected("wrong_type", name, "expected a number") from None
    if not isinstance(value, int | float):
        raise InputRejected("wrong_type", name, "expected a number")
    if not math.isfinite(value):
        raise InputRejected("not_finite", name)
    return float(value)


def _decode(raw: bytes, build: Callable[[_Fields], T]) -> T | Rejection:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejection("bad_json", None, "not valid JSON")
    if not isinstance(data, dict):
        return Rejection("not_an_object", None, "expected a JSON object")
    try:
        return build(_Fields(data))
    except InputRejected as exc:
        return exc.rejection


def decode_meter_message(
    raw: bytes, default_interval_ms: int
) -> MeterMessage | Rejection:
    """One interval reading, an interval block or a register reading."""

    def build(f: _Fields) -> MeterMessage:
        customer = f.text("customer_id")
        meter = f.optional_text("meter_id") or customer
        ctype = f.optional_customer_type()
        if "values" in f.data:
            return _block(f, customer, meter, ctype, default_interval_ms)
        if "register_kwh" in f.data:
            register_max = f.optional_number("register_max")
            if register_max is not None:
                checked_register_max(register_max)
            value = checked_kwh(
                f.number("register_kwh"), "register_kwh", MAX_REGISTER_KWH
            )
            return RegisterReading(
                customer, meter, f.instant("at"), value, register_max, ctype
            )
        kwh = checked_kwh(f.number("kwh"), "kwh")
        start = f.instant("start")
        end = (
            f.instant("end")
            if f.data.get("end") is not None
            else start + default_interval_ms
        )
        if end <= start:
            raise InputRejected("end_before_start", "end")
        return IntervalReading(customer, meter, start, end, kwh, ctype)

    return _decode(raw, build)


def _block(
    f: _Fields, customer: str, meter: str, ctype: str | None, default_interval_ms: int
) -> IntervalBlock:
    values = f.data["values"]
    if not isinstance(values, list):
        raise InputRejected("wrong_type", "values", "expected a list of kWh or null")
    if len(values) > MAX_BLOCK_VALUES:
        raise InputRejected("too_many_values", "values", f"at most {MAX_BLOCK_VALUES}")
    interval_ms = default_interval_ms
    if f.data.get("interval_minutes") is not None:
        minutes = f.number("interval_minutes")
        if not MIN_INTERVAL_MINUTES <= minutes <= MAX_INTERVAL_MINUTES:
            raise InputRejected(
                "bad_value",
                "interval_minutes",
                f"expected {MIN_INTERVAL_MINUTES} to {MAX_INTERVAL_MINUTES} minutes",
            )
        interval_ms = round(minutes * 60_000)
    checked: list[float | None] = []
    isfinite = math.isfinite
    for slot, value in enumerate(values):
        # The common case first: a plain, finite, non-negative JSON number.
        kind = type(value)
        if (
            (kind is float and isfinite(value)) or kind is int
        ) and 0 <= value <= MAX_INTERVAL_KWH:
            checked.append(float(value))
            continue
        if value is None:
            checked.append(None)
            continue
        checked.append(
            checked_kwh(_number(value, f"values[{slot}]"), f"values[{slot}]")
        )
    return IntervalBlock(
        customer, meter, f.instant("start"), interval_ms, tuple(checked), ctype
    )


def decode_customer(raw: bytes) -> CustomerRecord | Rejection:
    def build(f: _Fields) -> CustomerRecord:
        zone = f.optional_text("timezone")
        if zone is not None:
            try:
                parse_zone(zone)
            except ValueError:
                raise InputRejected(
                    "bad_value", "timezone", "expected an IANA zone or an offset"
                ) from None
        return CustomerRecord(
            f.text("customer_id"),
            f.customer_type(),
            zone,
            f.tier("tier_on_record", optional=True),
            f.optional_text("package_on_record"),
        )

    return _decode(raw, build)


def decode_catalog_entry(raw: bytes) -> CatalogEntry | Rejection:
    def build(f: _Fields) -> CatalogEntry:
        op = f.choice("op", frozenset({"upsert", "delete"}))
        package = (
            f.text("package_id") if op == "upsert" else f.optional_text("package_id")
        )
        tier = f.tier("tier")
        assert tier is not None
        return CatalogEntry(
            "upsert" if op == "upsert" else "delete", f.customer_type(), tier, package
        )

    return _decode(raw, build)


def decode_package_event(raw: bytes) -> PackageEvent | Rejection:
    def build(f: _Fields) -> PackageEvent:
        kind = f.choice("kind", PACKAGE_EVENT_KINDS, reason="unknown_kind")
        good = f.data.get("good")
        if kind == "review" and not isinstance(good, bool):
            raise InputRejected(
                "missing_field" if good is None else "wrong_type",
                "good",
                "expected true or false",
            )
        return PackageEvent(
            f.text("package_id"),
            kind,  # type: ignore[arg-type]  # checked against PACKAGE_EVENT_KINDS
            f.instant("at"),
            good if kind == "review" else None,
            f.optional_text("event_id"),
        )

    return _decode(raw, build)


def decode_switch_decision(raw: bytes) -> SwitchDecision | Rejection:
    def build(f: _Fields) -> SwitchDecision:
        decision = f.choice("decision", frozenset({"accept", "decline"}))
        return SwitchDecision(
            f.text("customer_id"),
            f.text("recommendation_id"),
            "accept" if decision == "accept" else "decline",
            f.instant("at"),
        )

    return _decode(raw, build)


def decode_campaign_command(raw: bytes) -> CampaignCommand | Rejection:
    def build(f: _Fields) -> CampaignCommand:
        f.choice("command", frozenset({"stop"}), reason="unknown_kind")
        return CampaignCommand(f.text("package_id"), "stop", f.instant("at"))

    return _decode(raw, build)
