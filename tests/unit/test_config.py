from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from tests.helpers import make_settings


def test_shipped_defaults_carry_the_spec_constants() -> None:
    settings = make_settings()
    assert settings.readings.grace_days == 3
    assert settings.readings.min_coverage == 0.9
    assert settings.tier.months == 12
    assert settings.tier.min_months == 3
    assert (settings.packages.a1, settings.packages.a2, settings.packages.a3) == (
        0.01,
        10,
        10,
    )
    assert (settings.packages.x1, settings.packages.x2) == (10, 20)
    assert settings.packages.min_reviews == 10
    assert settings.packages.good_review_threshold == 0.8
    assert (settings.campaign.t1_days, settings.campaign.t2_days) == (7, 30)
    assert settings.bands["residential"].band1.upper is None


def test_overlapping_bands_are_refused_naming_type_and_band() -> None:
    with pytest.raises(
        ConfigError,
        match="band 2 of residential: lower 100 must be >= band 3 upper 200",
    ):
        make_settings(**{"bands.residential.band2.lower": 100})


def test_band_one_below_band_two_is_refused() -> None:
    with pytest.raises(ConfigError, match="band 1 of primary"):
        make_settings(**{"bands.primary.band1.lower": 10})


def test_negative_band_three_is_refused() -> None:
    with pytest.raises(ConfigError, match="band 3 of tertiary: lower -1 must be >= 0"):
        make_settings(**{"bands.tertiary.band3.lower": -1})


def test_gaps_between_bands_are_allowed() -> None:
    settings = make_settings(**{"bands.residential.band2.upper": 400})
    assert settings.bands["residential"].band_of(450) is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("packages.x1", 30, "packages.x1: 30 must be < packages.x2 20"),
        ("packages.a1", -1, "packages.a1: expected a positive number"),
        ("readings.min_coverage", 1.5, "between 0 and 1"),
        ("tier.months", "twelve", "tier.months: expected a whole number"),
        ("time.timezone", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("readings.window_months", 6, "must be >= tier.months 12"),
    ],
)
def test_invalid_values_name_field_value_and_expectation(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_settings(**{key: value})


def test_environment_overrides_file_and_parses_values(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        '[tier]\nmonths = 6\nmin_months = 2\n[time]\ntimezone = "Europe/Berlin"\n'
    )
    settings = load_settings(
        path,
        env={
            "TARIFFSTREAM_TIER__MIN_MONTHS": "4",
            "TARIFFSTREAM_TIME__TIMEZONE": "+10:00",
        },
    )
    assert settings.tier.months == 6
    assert settings.tier.min_months == 4
    assert settings.timezone == "+10:00"


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path / "absent.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[tier\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})
