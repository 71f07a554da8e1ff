"""``tariffstream analyze`` on the real SGSC half-hourly data of ten households.

The file lives in ``../shared/data`` next to the repository; a fresh clone has no
such folder, so the module skips then. Expected values are computed here straight
from the file (``csv``, ``zoneinfo``), never with the product's own code.
"""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_FILE = REPO_ROOT.parent / "shared/data/sgsc_smart_meter10_halfhourly.csv"

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(
        not DATA_FILE.is_file(),
        reason=f"real data file {DATA_FILE} is absent (a fresh clone has no ../shared)",
    ),
]

COLUMN_MAP = "start=reading_datetime,kwh=general_supply_kwh"
CUSTOMERS = 10
HALF_HOUR = timedelta(minutes=30)
# config/tariffstream.toml defaults the expectations below rely on
MIN_COVERAGE = 0.9
TIER_MONTHS = 12
TIER_MIN_MONTHS = 3
RESIDENTIAL_BANDS = {1: (500.0, math.inf), 2: (200.0, 500.0), 3: (0.0, 200.0)}

Month = tuple[str, str]  # (customer, "YYYY-MM")


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.stdout)
        return data


@dataclass(frozen=True)
class FileFacts:
    """What the raw file says, read with the ``csv`` module only."""

    kwh: dict[Month, float]
    rows: dict[Month, int]
    # (line number, naive local timestamp) of every data row
    stamps: list[tuple[int, datetime]]


def _analyze(timezone: str) -> Run:
    # Environment overrides of the configuration would change the expectations.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARIFFSTREAM_")}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tariffstream.cli",
            "analyze",
            str(DATA_FILE),
            "--map",
            COLUMN_MAP,
            "--timezone",
            timezone,
            "--customer-type",
            "residential",
            "--json",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        check=False,
        timeout=300,
    )
    return Run(
        completed.returncode,
        completed.stdout,
        completed.stderr.decode("utf-8", "replace"),
    )


@pytest.fixture(scope="module")
def facts() -> FileFacts:
    values: dict[Month, list[float]] = defaultdict(list)
    rows: Counter[Month] = Counter()
    stamps = []
    with DATA_FILE.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for line, row in enumerate(reader, start=2):
            stamp = row["reading_datetime"]
            key = (row["customer_id"], stamp[:7])
            values[key].append(float(row["general_supply_kwh"]))
            rows[key] += 1
            stamps.append((line, datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")))
    kwh = {key: math.fsum(v) for key, v in values.items()}
    return FileFacts(kwh, dict(rows), stamps)


@pytest.fixture(scope="module")
def fixed_run() -> Run:
    return _analyze("+10:00")


@pytest.fixture(scope="module")
def report(fixed_run: Run) -> dict[str, Any]:
    assert fixed_run.returncode == 0, fixed_run.stderr
    return fixed_run.report


@pytest.fixture(scope="module")
def sydney_run() -> Run:
    return _analyze("Australia/Sydney")


def _months(report: dict[str, Any]) -> dict[Month, dict[str, Any]]:
    return {
        (customer["customer_id"], month["month"]): month
        for customer in report["customers"]
        for month in customer["months"]
    }


def _hours_in_month(label: str) -> float:
    """Length of a calendar month at a fixed UTC offset, in hours."""
    year, month = int(label[:4]), int(label[5:])
    start = datetime(year, month, 1)
    end = datetime(year + month // 12, month % 12 + 1, 1)
    return (end - start) / timedelta(hours=1)


def _band(kwh: float) -> int:
    return next(b for b, (lo, hi) in RESIDENTIAL_BANDS.items() if lo <= kwh < hi)


def test_fixed_offset_run_succeeds_without_diagnostics(fixed_run: Run) -> None:
    assert fixed_run.returncode == 0, fixed_run.stderr
    assert fixed_run.stderr == ""


def test_report_has_all_ten_customers_as_residential(report: dict[str, Any]) -> None:
    customers = report["customers"]
    assert len(customers) == CUSTOMERS
    assert all(c["customer_type"] == "residential" for c in customers)


def test_month_totals_equal_a_direct_groupby_of_the_file(
    report: dict[str, Any], facts: FileFacts
) -> None:
    months = _months(report)
    assert set(months) == set(facts.kwh)
    assert len({customer for customer, _ in facts.kwh}) == CUSTOMERS
    off = {
        key: (months[key]["kwh"], expected)
        for key, expected in facts.kwh.items()
        if abs(months[key]["kwh"] - expected) > 1e-6
    }
    assert off == {}


def test_months_are_listed_oldest_first(report: dict[str, Any]) -> None:
    for customer in report["customers"]:
        labels = [m["month"] for m in customer["months"]]
        assert labels == sorted(labels), customer["customer_id"]
        assert len(labels) == len(set(labels)), customer["customer_id"]


def test_coverage_is_the_share_of_the_month_the_half_hours_cover(
    report: dict[str, Any], facts: FileFacts
) -> None:
    for key, month in _months(report).items():
        expected = facts.rows[key] * 0.5 / _hours_in_month(key[1])
        assert month["coverage"] == pytest.approx(expected, abs=1e-6), key


def test_first_and_last_months_are_partial_and_the_last_is_not_counted(
    report: dict[str, Any],
) -> None:
    for customer in report["customers"]:
        first, last = customer["months"][0], customer["months"][-1]
        cid = customer["customer_id"]
        assert first["coverage"] < 1.0, cid
        assert last["coverage"] < MIN_COVERAGE, cid
        assert not last["closed"], cid
        assert not last["counted"], cid


def test_first_months_below_the_coverage_share_are_not_counted(
    report: dict[str, Any],
) -> None:
    # Several households joined on 1 June 2012 a few hours after midnight: their
    # first month covers more than 0.9 of June and counts by the SPEC's rule.
    stubs = [c["months"][0] for c in report["customers"]]
    short = [m for m in stubs if m["coverage"] < MIN_COVERAGE]
    assert short, "the file has customers who joined mid-month"
    assert not any(m["counted"] for m in short)
    assert all(m["counted"] for m in stubs if m["coverage"] >= MIN_COVERAGE)


def test_a_month_counts_exactly_when_closed_and_covered(report: dict[str, Any]) -> None:
    for key, month in _months(report).items():
        expected = month["closed"] and month["coverage"] >= MIN_COVERAGE
        assert month["counted"] == expected, key


def test_each_month_falls_in_the_residential_band_of_its_total(
    report: dict[str, Any],
) -> None:
    for key, month in _months(report).items():
        assert month["band"] == _band(month["kwh"]), key


def test_customer_10006704_reports_zero_for_november_and_december_2012(
    report: dict[str, Any],
) -> None:
    months = _months(report)
    for label in ("2012-11", "2012-12"):
        month = months[("10006704", label)]
        assert month["kwh"] == pytest.approx(0.0, abs=1e-6)
        # the zeros are readings, not a gap: the month is covered and counted
        assert month["coverage"] == pytest.approx(1.0)
        assert month["counted"]
        assert month["band"] == 3


def test_tier_follows_band_counts_with_ties_to_the_most_recent_month(
    report: dict[str, Any],
) -> None:
    for customer in report["customers"]:
        cid = customer["customer_id"]
        counts = customer["band_counts"]
        assert set(counts) == {"1", "2", "3"}, cid
        assert sum(counts.values()) <= TIER_MONTHS, cid
        counted = [m for m in customer["months"] if m["counted"]][-TIER_MONTHS:]
        expected_counts = Counter(str(m["band"]) for m in counted if m["band"])
        assert counts == {b: expected_counts[b] for b in ("1", "2", "3")}, cid
        best = max(counts.values())
        if len(counted) < TIER_MIN_MONTHS or best == 0:
            assert customer["tier"] is None, cid
            continue
        tied = {int(b) for b, n in counts.items() if n == best}
        latest_tied = next(m["band"] for m in reversed(counted) if m["band"] in tied)
        assert customer["tier"] == latest_tied, cid
        assert counts[str(customer["tier"])] == best, cid


def test_every_customer_gets_a_tier(report: dict[str, Any]) -> None:
    assert all(c["tier"] in (1, 2, 3) for c in report["customers"])


def test_nothing_is_rejected_with_a_fixed_offset(report: dict[str, Any]) -> None:
    assert report["rejected"] == {}


def _sydney_local_time_counts(stamps: list[tuple[int, datetime]]) -> Counter[datetime]:
    """How often each half-hour wall-clock time occurs in Sydney over the file."""
    zone = ZoneInfo("Australia/Sydney")
    first = min(s for _, s in stamps) - timedelta(days=2)
    last = max(s for _, s in stamps) + timedelta(days=2)
    seen: Counter[datetime] = Counter()
    instant = first.replace(tzinfo=UTC)
    while instant <= last.replace(tzinfo=UTC):
        seen[instant.astimezone(zone).replace(tzinfo=None)] += 1
        instant += HALF_HOUR
    return seen


def _stderr_lines(stderr: str, reason: str) -> list[int]:
    pattern = re.compile(rf"^line (\d+): {reason} \(start\)$", re.MULTILINE)
    return [int(n) for n in pattern.findall(stderr)]


@dataclass(frozen=True)
class SydneyClock:
    """Data rows whose wall-clock time Sydney skipped or showed twice."""

    nonexistent: list[int]
    ambiguous: list[int]


@pytest.fixture(scope="module")
def sydney_clock(facts: FileFacts) -> SydneyClock:
    seen = _sydney_local_time_counts(facts.stamps)
    return SydneyClock(
        nonexistent=[line for line, s in facts.stamps if seen[s] == 0],
        ambiguous=[line for line, s in facts.stamps if seen[s] == 2],
    )


def test_expected_sydney_clock_changes_fall_on_the_dst_days(
    sydney_clock: SydneyClock, facts: FileFacts
) -> None:
    stamp = dict(facts.stamps)
    # 7 Oct 2012 and 6 Oct 2013 skipped 02:00-03:00; 1 Apr 2012 and 7 Apr 2013
    # showed 02:00-03:00 twice. Every household has 2 rows per skipped hour.
    skipped = {stamp[line].date().isoformat() for line in sydney_clock.nonexistent}
    assert skipped == {"2012-10-07", "2013-10-06"}
    repeated = {stamp[line].date().isoformat() for line in sydney_clock.ambiguous}
    assert repeated == {"2012-04-01", "2013-04-07"}
    assert all(stamp[line].hour == 2 for line in sydney_clock.nonexistent)
    assert all(stamp[line].hour == 2 for line in sydney_clock.ambiguous)


def test_sydney_wall_clock_rejects_every_dst_row_and_exits_zero(
    sydney_run: Run, sydney_clock: SydneyClock
) -> None:
    assert sydney_run.returncode == 0, sydney_run.stderr[-2000:]
    reported = _stderr_lines(sydney_run.stderr, "(?:nonexistent|ambiguous)_local_time")
    assert reported == sorted(sydney_clock.nonexistent + sydney_clock.ambiguous)
    assert sydney_run.stderr.count("\n") == len(reported)
    rejected = sydney_run.report["rejected"]
    assert set(rejected) <= {"ambiguous_local_time", "nonexistent_local_time"}
    assert sum(rejected.values()) == len(reported)


def test_sydney_wall_clock_reports_skipped_times_as_nonexistent(
    sydney_run: Run, sydney_clock: SydneyClock
) -> None:
    lines = _stderr_lines(sydney_run.stderr, "nonexistent_local_time")
    assert lines == sydney_clock.nonexistent
    count = sydney_run.report["rejected"].get("nonexistent_local_time")
    assert count == len(sydney_clock.nonexistent)


def test_sydney_wall_clock_reports_repeated_times_as_ambiguous(
    sydney_run: Run, sydney_clock: SydneyClock
) -> None:
    lines = _stderr_lines(sydney_run.stderr, "ambiguous_local_time")
    assert lines == sydney_clock.ambiguous
    count = sydney_run.report["rejected"].get("ambiguous_local_time")
    assert count == len(sydney_clock.ambiguous)
