"""The product's configuration: one typed, validated object built once at start.

The defaults live in ``config/tariffstream.toml`` with a comment on every business
choice. ``load_settings`` layers, in order: that file, an optional file given with
``--config``, then ``TARIFFSTREAM_<SECTION>__<KEY>`` environment variables.

Exceptions::

    TariffstreamError
     └── ConfigError (also a ValueError): a value is missing, malformed or
         breaks a rule; the message names the field, the value and what was
         expected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules.errors import ConfigError
from rules.timezones import parse_zone

__all__ = [
    "CUSTOMER_TYPES",
    "Band",
    "BandSet",
    "CampaignSettings",
    "ConfigError",
    "GainRange",
    "PackageSettings",
    "ReadingSettings",
    "ServingSettings",
    "Settings",
    "StreamSettings",
    "TierSettings",
    "load_settings",
]

DEFAULTS_PATH = Path(__file__).with_name("tariffstream.toml")
ENV_PREFIX = "TARIFFSTREAM_"
CUSTOMER_TYPES = ("primary", "secondary", "tertiary", "residential")


@dataclass(frozen=True, slots=True)
class Band:
    """A half-open range [lower, upper) of monthly kWh; upper None is unbounded."""

    lower: float
    upper: float | None

    def contains(self, kwh: float) -> bool:
        return kwh >= self.lower and (self.upper is None or kwh < self.upper)


@dataclass(frozen=True, slots=True)
class BandSet:
    """The three consumption bands of one customer type, band 1 the highest."""

    band1: Band
    band2: Band
    band3: Band

    def band_of(self, kwh: float) -> int | None:
        """The band a month of ``kwh`` falls in, or None when it is in a gap."""
        for number, band in ((1, self.band1), (2, self.band2), (3, self.band3)):
            if band.contains(kwh):
                return number
        return None


@dataclass(frozen=True, slots=True)
class ReadingSettings:
    interval_minutes: int
    grace_days: float
    min_coverage: float
    window_months: int


@dataclass(frozen=True, slots=True)
class TierSettings:
    months: int
    min_months: int


@dataclass(frozen=True, slots=True)
class PackageSettings:
    a1: float
    a2: float
    a3: float
    x1: float
    x2: float
    min_reviews: int
    good_review_threshold: float


@dataclass(frozen=True, slots=True)
class GainRange:
    """A range (lower, upper] of TS gain."""

    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    t1_days: float
    t2_days: float
    slight: GainRange
    clear: GainRange
    significant: GainRange


@dataclass(frozen=True, slots=True)
class StreamSettings:
    broker: str
    broker_flavour: str
    topic_prefix: str
    partitions: int
    store: str
    data_dir: str
    web_port: int
    processing_guarantee: str
    standby_replicas: int
    replication_factor: int


@dataclass(frozen=True, slots=True)
class ServingSettings:
    redis_url: str
    api_token: str
    mirror_streams: bool
    stream_maxlen: int
    alerts_kept: int
    flush_seconds: float


@dataclass(frozen=True, slots=True)
class Settings:
    """Every business constant of the product, validated."""

    timezone: str
    readings: ReadingSettings
    tier: TierSettings
    bands: Mapping[str, BandSet]
    packages: PackageSettings
    marketing: Mapping[int, tuple[str, ...]]
    campaign: CampaignSettings
    streams: StreamSettings
    serving: ServingSettings
    raw: Mapping[str, Any]


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from the defaults, a file, the environment, overrides.

    ``overrides`` maps dotted keys ("tier.months") to values, for command-line
    options and tests; it is applied last.
    """
    data = _read_toml(DEFAULTS_PATH)
    if path is not None:
        _merge(data, _read_toml(Path(path)))
    for dotted, value in _env_overrides(os.environ if env is None else env).items():
        _set_dotted(data, dotted, value)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    return _build(data)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(
            f"config file {path}: cannot be read ({exc.strerror})"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from exc


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


# Short names operators expect for the settings they change most.
ENV_ALIASES = {
    "TARIFFSTREAM_BROKER": "streams.broker",
    "TARIFFSTREAM_PARTITIONS": "streams.partitions",
    "TARIFFSTREAM_REDIS_URL": "serving.redis_url",
    "TARIFFSTREAM_API_TOKEN": "serving.api_token",
}


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """TARIFFSTREAM_SECTION__KEY=value pairs as dotted keys with parsed values."""
    found: dict[str, Any] = {
        # Addresses and secrets are taken as they are: a token of digits stays text.
        dotted: int(env[name]) if dotted == "streams.partitions" else env[name]
        for name, dotted in ENV_ALIASES.items()
        if name in env
    }
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        found[dotted] = _parse_env_value(text)
    return found


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is a value, not a section")
        node = child
    node[leaf] = value


def _build(data: Mapping[str, Any]) -> Settings:
    time = _section(data, "time")
    readings = _section(data, "readings")
    tier = _section(data, "tier")
    reading_settings = ReadingSettings(
        interval_minutes=_int(readings, "readings.interval_minutes", minimum=1),
        grace_days=_number(readings, "readings.grace_days", minimum=0.0),
        min_coverage=_share(readings, "readings.min_coverage"),
        window_months=_int(readings, "readings.window_months", minimum=1),
    )
    tier_settings = TierSettings(
        months=_int(tier, "tier.months", minimum=1),
        min_months=_int(tier, "tier.min_months", minimum=1),
    )
    if tier_settings.min_months > tier_settings.months:
        raise ConfigError(
            f"tier.min_months: {tier_settings.min_months} must be <= tier.months "
            f"{tier_settings.months}"
        )
    if reading_settings.window_months < tier_settings.months:
        raise ConfigError(
            f"readings.window_months: {reading_settings.window_months} must be >= "
            f"tier.months {tier_settings.months}, or the tier could never see "
            "enough months"
        )
    zone_name = _str(time, "time.timezone")
    try:
        parse_zone(zone_name)
    except ValueError as exc:
        raise ConfigError(f"time.timezone: {exc}") from exc
    return Settings(
        timezone=zone_name,
        readings=reading_settings,
        tier=tier_settings,
        bands=_bands(_section(data, "bands")),
        packages=_packages(_section(data, "packages")),
        marketing=_marketing(_section(data, "marketing")),
        campaign=_campaign(_section(data, "campaign")),
        streams=_streams(_section(data, "streams")),
        serving=_serving(_section(data, "serving")),
        raw=data,
    )


def _bands(section: Mapping[str, Any]) -> dict[str, BandSet]:
    unknown = sorted(set(section) - set(CUSTOMER_TYPES))
    if unknown:
        raise ConfigError(
            f"bands.{unknown[0]}: unknown customer type, expected one of "
            f"{', '.join(CUSTOMER_TYPES)}"
        )
    bands: dict[str, BandSet] = {}
    for ctype in CUSTOMER_TYPES:
        per_type = _section(section, ctype, f"bands.{ctype}")
        band1, band2, band3 = (
            _band(per_type, f"bands.{ctype}.band{n}", unbounded_ok=n == 1)
            for n in (1, 2, 3)
        )
        _check_band_order(ctype, band1, band2, band3)
        bands[ctype] = BandSet(band1, band2, band3)
    return bands


def _band(section: Mapping[str, Any], field: str, unbounded_ok: bool) -> Band:
    leaf = field.rsplit(".", 1)[1]
    raw = _section(section, leaf, field)
    lower = _number(raw, f"{field}.lower")
    upper = _number(raw, f"{field}.upper") if "upper" in raw else None
    if upper is None and not unbounded_ok:
        raise ConfigError(f"{field}.upper: missing, only band 1 may be unbounded")
    if upper is not None and upper <= lower:
        raise ConfigError(f"{field}: upper {upper:g} must be > lower {lower:g}")
    return Band(lower, upper)


def _check_band_order(ctype: str, band1: Band, band2: Band, band3: Band) -> None:
    assert band2.upper is not None and band3.upper is not None
    if band1.lower < band2.upper:
        raise ConfigError(
            f"band 1 of {ctype}: lower {band1.lower:g} must be >= band 2 upper "
            f"{band2.upper:g}"
        )
    if band2.lower < band3.upper:
        raise ConfigError(
            f"band 2 of {ctype}: lower {band2.lower:g} must be >= band 3 upper "
            f"{band3.upper:g}"
        )
    if band3.lower < 0:
        raise ConfigError(f"band 3 of {ctype}: lower {band3.lower:g} must be >= 0")


def _packages(section: Mapping[str, Any]) -> PackageSettings:
    settings = PackageSettings(
        a1=_number(section, "packages.a1", positive=True),
        a2=_number(section, "packages.a2", positive=True),
        a3=_number(section, "packages.a3", positive=True),
        x1=_number(section, "packages.x1"),
        x2=_number(section, "packages.x2"),
        min_reviews=_int(section, "packages.min_reviews", minimum=0),
        good_review_threshold=_share(section, "packages.good_review_threshold"),
    )
    if settings.x1 >= settings.x2:
        raise ConfigError(
            f"packages.x1: {settings.x1:g} must be < packages.x2 {settings.x2:g}"
        )
    return settings


def _marketing(section: Mapping[str, Any]) -> dict[int, tuple[str, ...]]:
    levels: dict[int, tuple[str, ...]] = {}
    for level in (1, 2, 3):
        field = f"marketing.level{level}"
        measures = section.get(f"level{level}")
        if not isinstance(measures, list) or not all(
            isinstance(m, str) and m for m in measures
        ):
            raise ConfigError(
                f"{field}: expected a list of measure names, got {measures!r}"
            )
        levels[level] = tuple(measures)
    return levels


def _campaign(section: Mapping[str, Any]) -> CampaignSettings:
    ranges = []
    for grade in ("slight", "clear", "significant"):
        raw = _section(section, grade, f"campaign.{grade}")
        lower = _number(raw, f"campaign.{grade}.lower", minimum=0.0)
        upper = _number(raw, f"campaign.{grade}.upper")
        if upper <= lower:
            raise ConfigError(
                f"campaign.{grade}: upper {upper:g} must be > lower {lower:g}"
            )
        ranges.append(GainRange(lower, upper))
    slight, clear, significant = ranges
    if clear.lower < slight.upper or significant.lower < clear.upper:
        raise ConfigError(
            "campaign: gain ranges must rise from slight to clear to significant "
            "without overlapping, got "
            f"slight ({slight.lower:g}, {slight.upper:g}], "
            f"clear ({clear.lower:g}, {clear.upper:g}], "
            f"significant ({significant.lower:g}, {significant.upper:g}]"
        )
    t1 = _number(section, "campaign.t1_days", positive=True)
    t2 = _number(section, "campaign.t2_days", positive=True)
    if t1 >= t2:
        raise ConfigError(f"campaign.t1_days: {t1:g} must be < campaign.t2_days {t2:g}")
    return CampaignSettings(t1, t2, slight, clear, significant)


def _streams(section: Mapping[str, Any]) -> StreamSettings:
    flavour = _str(section, "streams.broker_flavour")
    if flavour not in ("auto", "embedded", "kafka"):
        raise ConfigError(
            f"streams.broker_flavour: expected auto, embedded or kafka, got {flavour!r}"
        )
    guarantee = _str(section, "streams.processing_guarantee")
    if guarantee not in ("at_least_once", "exactly_once"):
        raise ConfigError(
            "streams.processing_guarantee: expected at_least_once or exactly_once, "
            f"got {guarantee!r}"
        )
    store = _str(section, "streams.store")
    if store not in ("rocksdb://", "memory://"):
        raise ConfigError(
            f"streams.store: expected rocksdb:// or memory://, got {store!r}"
        )
    return StreamSettings(
        broker=_str(section, "streams.broker"),
        broker_flavour=flavour,
        topic_prefix=str(section.get("topic_prefix", "")),
        partitions=_int(section, "streams.partitions", minimum=1),
        store=store,
        data_dir=_str(section, "streams.data_dir"),
        web_port=_int(section, "streams.web_port", minimum=0),
        processing_guarantee=guarantee,
        standby_replicas=_int(section, "streams.standby_replicas", minimum=0),
        replication_factor=_int(section, "streams.replication_factor", minimum=1),
    )


def _serving(section: Mapping[str, Any]) -> ServingSettings:
    mirror = section.get("mirror_streams")
    if not isinstance(mirror, bool):
        raise ConfigError(
            f"serving.mirror_streams: expected true or false, got {mirror!r}"
        )
    for name in ("redis_url", "api_token"):
        if not isinstance(section.get(name), str):
            raise ConfigError(
                f"serving.{name}: expected a string, got {section.get(name)!r}"
            )
    return ServingSettings(
        redis_url=section["redis_url"],
        api_token=section["api_token"],
        mirror_streams=mirror,
        stream_maxlen=_int(section, "serving.stream_maxlen", minimum=1),
        alerts_kept=_int(section, "serving.alerts_kept", minimum=1),
        flush_seconds=_number(section, "serving.flush_seconds", positive=True),
    )


def _section(
    data: Mapping[str, Any], key: str, field: str | None = None
) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{field or key}: expected a table, got {value!r}")
    return value


def _str(section: Mapping[str, Any], field: str) -> str:
    value = section.get(field.rsplit(".", 1)[1])
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def _number(
    section: Mapping[str, Any],
    field: str,
    minimum: float | None = None,
    positive: bool = False,
) -> float:
    value = section.get(field.rsplit(".", 1)[1])
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{field}: expected a number, got {value!r}")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigError(f"{field}: expected a finite number, got {value!r}")
    if positive and number <= 0:
        raise ConfigError(f"{field}: expected a positive number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{field}: expected a number >= {minimum:g}, got {value!r}")
    return number


def _int(section: Mapping[str, Any], field: str, minimum: int) -> int:
    value = section.get(field.rsplit(".", 1)[1])
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{field}: expected a whole number >= {minimum}, got {value}")
    return value


def _share(section: Mapping[str, Any], field: str) -> float:
    value = _number(section, field, minimum=0.0)
    if value > 1:
        raise ConfigError(f"{field}: expected a share between 0 and 1, got {value:g}")
    return value
