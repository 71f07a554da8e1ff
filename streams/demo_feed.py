"""A deterministic year of demo input: catalog, customers, meter-days, package events.

Everything here is pure: no broker, no files, no wall clock. The same arguments give
the same bytes; customers, package events and meter noise come from separate
seeded streams, so the package events do not depend on the number of customers.
Callers pace the events themselves (``DAY_MS`` is one day of
event time) and publish them to the short topic names used by ``DemoEvent.topic``.

Consumption follows the BDEW standard load profiles computed by ``demandlib``
(H0 households, G0 commerce, L0 agriculture), scaled to each customer's drawn
annual total. The BDEW has no industrial profile (industrial sites are interval
metered), so ``secondary`` customers get a near-flat shift profile: weekdays 06:00
to 22:00 at 1.2, other weekday hours 0.8, weekends 0.6 (relative weights,
normalised over the year). Profile instants are read as UTC, the shipped
deployment zone; demandlib marks no holidays.

Package events follow a script per package: phases of a few weeks with their own
subscribe, unsubscribe, review, good-review share and push rates (Poisson per
day). Four archetypes take each package through different heat levels and
marketing levels over the year, so campaigns start and end:

- ``riser``: cold, then medium, then hot on steady sign-ups; a spell of bad
  reviews later drops its good-review rate under the threshold (campaign ends);
- ``steady``: a launch burst to medium, then a churn spell (unsubscribes with few
  pushes) that makes it cold, then a slow recovery;
- ``fader``: a big launch to hot, then heavy churn through medium to cold;
- ``poor``: unrated and then badly rated for a quarter, no marketing, until a run
  of good reviews lifts it over the threshold.

With the shipped coefficients a package needs about 1,000 live users to be hot
(TS = 0.01*SR + 10*HL - ...), so package events are counted in tens of thousands
a year: they stand for the retailer's whole customer base, of which the demo
customers are a small metered sample.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import orjson

from config import Band, BandSet

__all__ = [
    "ARCHETYPES",
    "CUSTOMER_TYPES",
    "DAY_MS",
    "DEMO_BANDS",
    "TOPICS",
    "DemoCustomer",
    "DemoEvent",
    "catalog_package",
    "demo_customers",
    "demo_events",
    "package_events",
    "year_profiles",
]

DAY_MS = 86_400_000
HALF_HOUR_MS = 1_800_000
SLOTS_PER_DAY = 48
YEAR_MS = 365 * DAY_MS

TOPICS = ("catalog", "customers", "meter-readings", "package-events")
CUSTOMER_TYPES = ("primary", "secondary", "tertiary", "residential")
_TYPE_CODE = {
    "primary": "PRI",
    "secondary": "SEC",
    "tertiary": "TER",
    "residential": "RES",
}
# Row of each customer type in ``year_profiles``.
_PROFILE_ROW = {"residential": 0, "tertiary": 1, "primary": 2, "secondary": 3}
# Customer i gets type _TYPE_CYCLE[i % 8]: half households, every type in any 8.
_TYPE_CYCLE = (
    "residential",
    "tertiary",
    "primary",
    "secondary",
    "residential",
    "tertiary",
    "residential",
    "residential",
)

# The monthly kWh bands of config/tariffstream.toml (a test keeps them equal);
# pass ``bands=settings.bands`` to draw customers against a deployment's own.
DEMO_BANDS: Mapping[str, BandSet] = {
    "primary": BandSet(Band(5000, None), Band(1000, 5000), Band(0, 1000)),
    "secondary": BandSet(Band(100000, None), Band(20000, 100000), Band(0, 20000)),
    "tertiary": BandSet(Band(10000, None), Band(2000, 10000), Band(0, 2000)),
    "residential": BandSet(Band(500, None), Band(200, 500), Band(0, 200)),
}

# Share of customers drawn next to a band boundary with a strong yearly trend.
_EDGE_SHARE = 0.35
# Share of customers whose tier on record is not the one their target suggests.
_MISFILED_SHARE = 0.15
# A customer-day has a short run of missing intervals with this probability.
_GAP_PROBABILITY = 1 / 2000
# Relative noise per half hour and per day (log-normal sigmas).
_SLOT_SIGMA = 0.08
_DAY_SIGMA = 0.05


@dataclass(frozen=True, slots=True)
class DemoEvent:
    """One message to publish: event time, short topic name, key and JSON value."""

    at_ms: int
    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    """A demo customer and the consumption drawn for it.

    ``annual_kwh`` is the target total of the first 365 days; ``trend`` tilts
    consumption linearly from ``1 - trend`` at the start to ``1 + trend`` a year
    later (so the year's mean stays near 1), which walks customers drawn near a
    band boundary across it.
    """

    customer_id: str
    meter_id: str
    customer_type: str
    annual_kwh: float
    trend: float
    tier_on_record: int
    package_on_record: str


def catalog_package(customer_type: str, tier: int) -> str:
    """The demo catalog's package id for a type and tier, e.g. ``RES-T1``."""
    return f"{_TYPE_CODE[customer_type]}-T{tier}"


# --- load profiles ----------------------------------------------------------


@functools.cache
def year_profiles(year: int) -> npt.NDArray[np.float64]:
    """Half-hourly shares of a year's energy, rows in ``_PROFILE_ROW`` order.

    Rows: H0 (residential), G0 (tertiary), L0 (primary) from demandlib, and the
    near-flat industrial profile (secondary); each row sums to 1 over the year.
    The array is cached per year and read-only.
    """
    from demandlib import bdew

    # ElecSlp turns every warning into an error process-wide while it builds
    # (warnings.simplefilter("error")); keep that inside this block.
    with warnings.catch_warnings():
        quarter_hours = bdew.ElecSlp(year).get_profiles("h0", "g0", "l0")
        bdew_shares = quarter_hours.to_numpy(dtype=np.float64)
    half_hours = bdew_shares.reshape(-1, 2, 3).sum(axis=1).T
    industrial = _industrial_profile(year)
    rows = np.vstack([half_hours, industrial[np.newaxis, :]])
    rows /= rows.sum(axis=1, keepdims=True)
    rows.flags.writeable = False
    return rows


def _industrial_profile(year: int) -> npt.NDArray[np.float64]:
    first = datetime(year, 1, 1, tzinfo=UTC)
    days = (datetime(year + 1, 1, 1, tzinfo=UTC) - first).days
    weekday = np.array([(first.weekday() + d) % 7 for d in range(days)])
    hour = np.arange(SLOTS_PER_DAY) // 2
    working = (weekday[:, np.newaxis] < 5) & (hour >= 6) & (hour < 22)
    weekend = np.broadcast_to(weekday[:, np.newaxis] >= 5, working.shape)
    weights = np.where(working, 1.2, np.where(weekend, 0.6, 0.8))
    return weights.reshape(-1).astype(np.float64)


@functools.cache
def _year_start_ms(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp() * 1000)


def _year_of(at_ms: int) -> int:
    return datetime.fromtimestamp(at_ms / 1000, UTC).year


def _day_shares(day_start_ms: int) -> npt.NDArray[np.float64]:
    """(4, 48) profile shares of the 48 half hours from ``day_start_ms``."""
    year = _year_of(day_start_ms)
    offset = (day_start_ms - _year_start_ms(year)) // HALF_HOUR_MS
    profiles = year_profiles(year)
    if offset + SLOTS_PER_DAY <= profiles.shape[1]:
        return profiles[:, offset : offset + SLOTS_PER_DAY]
    columns = []
    for slot in range(SLOTS_PER_DAY):
        at = day_start_ms + slot * HALF_HOUR_MS
        year = _year_of(at)
        index = (at - _year_start_ms(year)) // HALF_HOUR_MS
        columns.append(year_profiles(year)[:, index])
    return np.stack(columns, axis=1)


# --- customers --------------------------------------------------------------


def _typical_monthly(bands: BandSet, band: int) -> float:
    """A month well inside ``band``: its midpoint, or 1.5x the floor of band 1."""
    chosen = (bands.band1, bands.band2, bands.band3)[band - 1]
    if chosen.upper is None:
        return max(chosen.lower * 1.5, 1.0)
    return (chosen.lower + chosen.upper) / 2


def _band_of(bands: BandSet, monthly_kwh: float) -> int:
    found = bands.band_of(monthly_kwh)
    if found is not None:
        return found
    # In a gap between bands: the nearest band below.
    for number, band in ((1, bands.band1), (2, bands.band2)):
        if monthly_kwh >= band.lower:
            return number
    return 3


def demo_customers(
    customers: int = 200,
    seed: int = 7,
    bands: Mapping[str, BandSet] | None = None,
) -> list[DemoCustomer]:
    """The demo population: types in a fixed cycle, consumption drawn per band.

    About two thirds sit in the middle of a band with a slight trend; the rest
    have a trend of 20-35% that takes them across a band boundary between the
    2nd and the 5th month, so their months change band and their analyzed tier
    changes later in the year.
    Some customers are on record with a neighbouring tier, so recommendations
    appear as soon as they have a tier.
    """
    bands = DEMO_BANDS if bands is None else bands
    rng = np.random.default_rng([seed, 1])
    population = []
    for index in range(customers):
        ctype = _TYPE_CYCLE[index % len(_TYPE_CYCLE)]
        type_bands = bands[ctype]
        if rng.random() < _EDGE_SHARE:
            upper_band = int(rng.integers(1, 3))
            boundary = (type_bands.band1, type_bands.band2)[upper_band - 1].lower
            trend = rng.uniform(0.2, 0.35) * (1 if rng.random() < 0.5 else -1)
            # Cross the boundary early in the year, so that most of the year's
            # months land on the other side and the analyzed tier follows.
            crossing = rng.uniform(0.15, 0.35)
            monthly = boundary / (1 + trend * (2 * crossing - 1))
        else:
            band = int(rng.integers(1, 4))
            monthly = _typical_monthly(type_bands, band) * math.exp(
                rng.normal(0.0, 0.1)
            )
            trend = rng.uniform(-0.03, 0.03)
        tier = _band_of(type_bands, monthly)
        if rng.random() < _MISFILED_SHARE:
            tier = tier + 1 if tier < 3 else 2
        number = f"{index + 1:04d}"
        population.append(
            DemoCustomer(
                customer_id=f"C{number}",
                meter_id=f"M{number}",
                customer_type=ctype,
                annual_kwh=round(monthly * 12, 1),
                trend=round(float(trend), 4),
                tier_on_record=tier,
                package_on_record=catalog_package(ctype, tier),
            )
        )
    return population


def _trend_factor(
    trends: npt.NDArray[np.float64], elapsed_ms: int
) -> npt.NDArray[np.float64]:
    position = 2 * (elapsed_ms + DAY_MS / 2) / YEAR_MS - 1
    return np.maximum(1 + trends * position, 0.2)


def _block_values(
    population: Sequence[DemoCustomer],
    day_start_ms: int,
    elapsed_ms: int,
    rng: np.random.Generator,
) -> list[list[float | None]]:
    """One meter-day of half-hourly kWh per customer (None where missing)."""
    shares = _day_shares(day_start_ms)
    rows = np.array([_PROFILE_ROW[c.customer_type] for c in population])
    annual = np.array([c.annual_kwh for c in population])
    trends = np.array([c.trend for c in population])
    expected = shares[rows] * (annual * _trend_factor(trends, elapsed_ms))[:, None]
    count = len(population)
    noise = rng.lognormal(
        -(_SLOT_SIGMA**2) / 2, _SLOT_SIGMA, size=(count, SLOTS_PER_DAY)
    ) * rng.lognormal(-(_DAY_SIGMA**2) / 2, _DAY_SIGMA, size=(count, 1))
    values: list[list[float | None]] = np.round(expected * noise, 3).tolist()
    gaps = rng.random(count) < _GAP_PROBABILITY
    gap_starts = rng.integers(0, SLOTS_PER_DAY, size=count)
    gap_lengths = rng.integers(1, 5, size=count)
    for index in np.flatnonzero(gaps):
        first = int(gap_starts[index])
        for slot in range(first, min(first + int(gap_lengths[index]), SLOTS_PER_DAY)):
            values[index][slot] = None
    return values


# --- package events ----------------------------------------------------------

# A phase: (days, subscribes/day, unsubscribes/day, reviews/day, good share,
# pushes/day). The last phase of a script runs on to the end of the feed.
Phase = tuple[float, float, float, float, float, float]

ARCHETYPES: Mapping[str, tuple[Phase, ...]] = {
    "riser": (
        (30, 6, 0.3, 1, 0.93, 1),
        (50, 14, 0.5, 1, 0.93, 1),
        (60, 16, 0.5, 1, 0.93, 1),
        (25, 3, 3, 5, 0.4, 1),
        (365, 6, 1, 3, 0.97, 2),
    ),
    "steady": (
        (20, 30, 0.5, 1.5, 0.9, 3),
        (60, 2, 0.5, 1.5, 0.9, 2),
        (25, 1, 10, 1.5, 0.85, 0.3),
        (365, 3, 0.5, 1.5, 0.92, 4),
    ),
    "fader": (
        (30, 50, 0.5, 2, 0.9, 3),
        (60, 2, 6, 1.5, 0.88, 2),
        (365, 1, 1.5, 1.5, 0.9, 0.7),
    ),
    "poor": (
        (90, 1.5, 0.5, 1.5, 0.55, 1),
        (60, 1.5, 0.5, 5, 0.98, 1),
        (365, 5, 0.5, 2, 0.92, 2),
    ),
}


@dataclass(frozen=True, slots=True)
class _Script:
    package_id: str
    archetype: str
    # Day each phase ends (exclusive) and its rates.
    ends: tuple[int, ...]
    phases: tuple[Phase, ...]

    def phase_on(self, day: int) -> Phase:
        for end, phase in zip(self.ends, self.phases, strict=True):
            if day < end:
                return phase
        return self.phases[-1]


def _package_scripts(rng: np.random.Generator) -> list[_Script]:
    """Every catalog package gets an archetype (3 each) with jittered phases."""
    packages = [
        catalog_package(ctype, tier) for ctype in CUSTOMER_TYPES for tier in (1, 2, 3)
    ]
    names = [name for name in ARCHETYPES for _ in range(3)]
    order = rng.permutation(len(names))
    scripts = []
    for package, pick in zip(packages, order, strict=True):
        archetype = names[int(pick)]
        ends = []
        phases = []
        day = 0
        for days, sub, unsub, reviews, good, push in ARCHETYPES[archetype]:
            day += max(1, round(days * rng.uniform(0.85, 1.15)))
            ends.append(day)
            scale = rng.uniform(0.9, 1.1, size=5)
            phases.append(
                (
                    float(ends[-1] - (ends[-2] if len(ends) > 1 else 0)),
                    sub * scale[0],
                    unsub * scale[1],
                    reviews * scale[2],
                    min(good + (scale[3] - 1.0) * 0.2, 1.0),
                    push * scale[4],
                )
            )
        scripts.append(_Script(package, archetype, tuple(ends), tuple(phases)))
    return scripts


def _package_body(package_id: str, kind: str, at_ms: int, good: bool | None) -> bytes:
    body: dict[str, object] = {"package_id": package_id, "kind": kind, "at": at_ms}
    if good is not None:
        body["good"] = good
    return orjson.dumps(body)


class _PackageFeed:
    """Draws each day's package events, keeping live users to cap unsubscribes."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 2])
        self.scripts = _package_scripts(self.rng)
        self.live = [0] * len(self.scripts)

    def day(self, day: int, day_start_ms: int) -> list[DemoEvent]:
        rng = self.rng
        drawn: list[tuple[int, int, DemoEvent]] = []
        for index, script in enumerate(self.scripts):
            _, sub, unsub, reviews, good_share, push = script.phase_on(day)
            n_sub, n_unsub, n_review, n_push = (
                int(n) for n in rng.poisson([sub, unsub, reviews, push])
            )
            n_unsub = min(n_unsub, self.live[index])
            self.live[index] += n_sub - n_unsub
            goods = rng.random(n_review) < good_share
            kinds = (
                ["subscribe"] * n_sub
                + ["unsubscribe"] * n_unsub
                + ["review"] * n_review
                + ["push"] * n_push
            )
            offsets = rng.integers(0, DAY_MS, size=len(kinds))
            review = 0
            key = script.package_id.encode()
            for kind, offset in zip(kinds, offsets, strict=True):
                good: bool | None = None
                if kind == "review":
                    good = bool(goods[review])
                    review += 1
                at = day_start_ms + int(offset)
                value = _package_body(script.package_id, kind, at, good)
                drawn.append(
                    (at, len(drawn), DemoEvent(at, "package-events", key, value))
                )
        drawn.sort()
        return [event for _, _, event in drawn]


def _start_ms(start: str) -> int:
    moment = datetime.fromisoformat(start)
    if moment.tzinfo is None:
        raise ValueError(f"start needs an offset, got {start!r}")
    return int(moment.timestamp() * 1000)


def package_events(
    start: str = "2024-01-01T00:00:00+00:00", days: int = 365, seed: int = 7
) -> Iterator[DemoEvent]:
    """The package events of ``demo_events`` alone (the same ones, in order)."""
    start_ms = _start_ms(start)
    feed = _PackageFeed(seed)
    for day in range(days):
        yield from feed.day(day, start_ms + day * DAY_MS)


# --- the whole feed ------------------------------------------------------------


def _setup_events(start_ms: int, population: Sequence[DemoCustomer]) -> list[DemoEvent]:
    events = []
    for ctype in CUSTOMER_TYPES:
        for tier in (1, 2, 3):
            package = catalog_package(ctype, tier)
            body = {
                "op": "upsert",
                "customer_type": ctype,
                "tier": tier,
                "package_id": package,
            }
            key = f"{ctype}:{tier}".encode()
            events.append(DemoEvent(start_ms, "catalog", key, orjson.dumps(body)))
    for customer in population:
        body = {
            "customer_id": customer.customer_id,
            "customer_type": customer.customer_type,
            "tier_on_record": customer.tier_on_record,
            "package_on_record": customer.package_on_record,
        }
        events.append(
            DemoEvent(
                start_ms, "customers", customer.customer_id.encode(), orjson.dumps(body)
            )
        )
    return events


def demo_events(
    customers: int = 200,
    start: str = "2024-01-01T00:00:00+00:00",
    days: int = 365,
    seed: int = 7,
    bands: Mapping[str, BandSet] | None = None,
) -> Iterator[DemoEvent]:
    """The demo's input events in non-decreasing event time.

    First the catalog (12 upserts, keyed ``type:tier``) and the customer records,
    all at ``start``. Then, day by day, the package events of the day (keyed by
    package) and the meter-day blocks of the previous day, one per customer
    (keyed by customer), delivered between 01:00 and 03:00 after the day ends,
    as a head-end system would. The last day's blocks come after its end.
    """
    start_ms = _start_ms(start)
    population = demo_customers(customers, seed, bands)
    yield from _setup_events(start_ms, population)
    meter_rng = np.random.default_rng([seed, 3])
    packages = _PackageFeed(seed)
    keys = [c.customer_id.encode() for c in population]
    for day in range(days + 1):
        day_start = start_ms + day * DAY_MS
        todays = packages.day(day, day_start) if day < days else []
        if day == 0:
            yield from todays
            continue
        metered_start = day_start - DAY_MS
        values = _block_values(
            population, metered_start, metered_start - start_ms, meter_rng
        )
        delivery = meter_rng.integers(DAY_MS // 24, DAY_MS // 8, size=len(population))
        blocks = []
        for index, customer in enumerate(population):
            body = {
                "customer_id": customer.customer_id,
                "meter_id": customer.meter_id,
                "start": metered_start,
                "interval_minutes": 30,
                "values": values[index],
            }
            at = day_start + int(delivery[index])
            blocks.append(
                DemoEvent(at, "meter-readings", keys[index], orjson.dumps(body))
            )
        blocks.sort(key=lambda event: event.at_ms)
        yield from _merge(todays, blocks)


def _merge(first: list[DemoEvent], second: list[DemoEvent]) -> Iterator[DemoEvent]:
    """Two time-ordered lists as one; ``first`` wins ties."""
    i = j = 0
    while i < len(first) and j < len(second):
        if second[j].at_ms < first[i].at_ms:
            yield second[j]
            j += 1
        else:
            yield first[i]
            i += 1
    yield from first[i:]
    yield from second[j:]
