"""Meter readings from CSV files, for ``analyze`` and ``replay``.

Interval files have ``customer_id,start,kwh`` (optional ``end``, ``meter_id``,
``customer_type``); register files have ``customer_id,meter_id,at,register_kwh``
(optional ``register_max``). ``--map new=old`` names the file's own columns.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import TextIO

from models.decode import (
    CUSTOMER_TYPES,
    MAX_INTERVAL_KWH,
    MAX_REGISTER_KWH,
    InputRejected,
    checked_kwh,
    checked_register_max,
    parse_instant,
)
from models.events import IntervalReading, RegisterReading, Rejection

__all__ = [
    "CsvFormatError",
    "CsvOptions",
    "RowRejection",
    "parse_column_map",
    "read_readings",
]

INTERVAL_COLUMNS = ("customer_id", "start", "kwh")
REGISTER_COLUMNS = ("customer_id", "meter_id", "at", "register_kwh")


class CsvFormatError(ValueError):
    """The file cannot be read as readings at all (missing columns, bad map)."""


@dataclass(frozen=True, slots=True)
class CsvOptions:
    zone: tzinfo
    interval_ms: int
    customer_type: str | None = None
    column_map: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RowRejection:
    line: int
    rejection: Rejection


def parse_column_map(text: str | None) -> dict[str, str]:
    """``start=reading_datetime,kwh=general_supply_kwh`` as {ours: theirs}."""
    mapping: dict[str, str] = {}
    for pair in (text or "").split(","):
        if not pair.strip():
            continue
        new, sep, old = pair.partition("=")
        if not sep or not new.strip() or not old.strip():
            raise CsvFormatError(f"--map: expected new=old pairs, got {pair!r}")
        mapping[new.strip()] = old.strip()
    return mapping


def read_readings(
    handle: TextIO, options: CsvOptions
) -> Iterator[IntervalReading | RegisterReading | RowRejection]:
    """Readings of a CSV file in file order, with rejected rows in their place."""
    # A field longer than csv's default 128 KiB is one bad row, not a bad file.
    csv.field_size_limit(16 * 1024 * 1024)
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise CsvFormatError("the file is empty, expected a header row")
    columns = _resolve_columns([h.strip() for h in header], options.column_map or {})
    register = "register_kwh" in columns
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            if register:
                yield _register(row, columns, options)
            else:
                yield _interval(row, columns, options)
        except InputRejected as exc:
            yield RowRejection(line, exc.rejection)
        except IndexError:
            yield RowRejection(line, Rejection("missing_field", None, "row is short"))


def _resolve_columns(
    header: list[str], column_map: Mapping[str, str]
) -> dict[str, int]:
    position = {name: i for i, name in enumerate(header)}
    columns: dict[str, int] = {}
    for ours in (
        *INTERVAL_COLUMNS,
        *REGISTER_COLUMNS,
        "end",
        "register_max",
        "customer_type",
    ):
        theirs = column_map.get(ours, ours)
        if theirs in position:
            columns[ours] = position[theirs]
        elif ours in column_map:
            raise CsvFormatError(
                f"--map {ours}={theirs}: the file has no column {theirs!r}"
            )
    wanted = REGISTER_COLUMNS if "register_kwh" in columns else INTERVAL_COLUMNS
    missing = [name for name in wanted if name not in columns]
    if missing:
        shown = ", ".join(header)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        raise CsvFormatError(
            f"missing column(s) {', '.join(missing)}; the header has {shown} "
            "(use --map ours=theirs)"
        )
    return columns


def _cell(row: list[str], columns: Mapping[str, int], name: str) -> str | None:
    index = columns.get(name)
    if index is None:
        return None
    value = row[index].strip()
    return value or None


def _text(row: list[str], columns: Mapping[str, int], name: str) -> str:
    value = _cell(row, columns, name)
    if value is None:
        raise InputRejected("missing_field", name)
    return value


def _kwh(
    row: list[str],
    columns: Mapping[str, int],
    name: str,
    maximum: float = MAX_INTERVAL_KWH,
) -> float:
    text = _text(row, columns, name)
    try:
        value = float(text)
    except ValueError:
        raise InputRejected("wrong_type", name, "expected a number") from None
    if not math.isfinite(value):
        raise InputRejected("not_finite", name)
    return checked_kwh(value, name, maximum)


def _customer_type(
    row: list[str], columns: Mapping[str, int], options: CsvOptions
) -> str | None:
    value = _cell(row, columns, "customer_type") or options.customer_type
    if value is not None and value not in CUSTOMER_TYPES:
        raise InputRejected("unknown_customer_type", "customer_type")
    return value


def _interval(
    row: list[str], columns: Mapping[str, int], options: CsvOptions
) -> IntervalReading:
    customer = _text(row, columns, "customer_id")
    start = parse_instant(_text(row, columns, "start"), "start", options.zone)
    end_text = _cell(row, columns, "end")
    end = (
        start + options.interval_ms
        if end_text is None
        else parse_instant(end_text, "end", options.zone)
    )
    if end <= start:
        raise InputRejected("end_before_start", "end")
    return IntervalReading(
        customer,
        _cell(row, columns, "meter_id") or customer,
        start,
        end,
        _kwh(row, columns, "kwh"),
        _customer_type(row, columns, options),
    )


def _register(
    row: list[str], columns: Mapping[str, int], options: CsvOptions
) -> RegisterReading:
    customer = _text(row, columns, "customer_id")
    maximum = _cell(row, columns, "register_max")
    return RegisterReading(
        customer,
        _text(row, columns, "meter_id"),
        parse_instant(_text(row, columns, "at"), "at", options.zone),
        _kwh(row, columns, "register_kwh", MAX_REGISTER_KWH),
        None
        if maximum is None
        else checked_register_max(_kwh(row, columns, "register_max", MAX_REGISTER_KWH)),
        _customer_type(row, columns, options),
    )


def open_csv(path: str | Path) -> TextIO:
    # utf-8-sig: spreadsheet exports start with a byte-order mark.
    return open(path, newline="", encoding="utf-8-sig")
