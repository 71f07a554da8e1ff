from __future__ import annotations

import pytest

from models.events import (
    CampaignCommand,
    CampaignEffect,
    HeatChange,
    MarketingAction,
    PackageEvent,
    PackageEventKind,
)
from rules.packages import (
    PackageState,
    apply_campaign_command,
    apply_package_event,
    campaign_effect,
    heat_of,
    marketing_level,
    usage_value,
)
from tests.helpers import make_settings

DAY = 86_400_000
T0 = 1_700_000_000_000


def test_usage_value_follows_the_spec_formula_with_default_coefficients() -> None:
    p = make_settings().packages
    assert usage_value(sr=1000, hl=0.9, tr=30, tc=2, settings=p) == pytest.approx(
        10 + 9 - 100
    )


@pytest.mark.parametrize(
    ("ts", "heat"), [(9.99, "cold"), (10, "medium"), (19.99, "medium"), (20, "hot")]
)
def test_heat_thresholds_are_half_open(ts: float, heat: str) -> None:
    assert heat_of(ts, make_settings().packages) == heat


@pytest.mark.parametrize(
    ("heat", "hl", "level"),
    [
        ("hot", 0.9, 3),
        ("medium", 0.9, 2),
        ("cold", 0.9, 1),
        ("hot", 0.8, None),
        ("hot", None, None),
    ],
)
def test_marketing_level_needs_a_good_review_rate_above_the_threshold(
    heat: str, hl: float | None, level: int | None
) -> None:
    assert marketing_level(heat, hl, make_settings().packages) == level


def feed(
    state: PackageState,
    kind: PackageEventKind,
    count: int,
    at: int,
    good: bool | None = None,
) -> list[object]:
    outputs: list[object] = []
    settings = make_settings()
    for _ in range(count):
        outputs += apply_package_event(
            state, PackageEvent("P1", kind, at, good), settings
        )
    return outputs


def test_an_unrated_package_counts_hl_as_zero_and_gets_no_measure() -> None:
    state = PackageState("P1")
    feed(state, "review", 9, T0, good=True)
    assert state.ts == 0 and state.level is None
    outputs = feed(state, "review", 1, T0, good=True)
    assert state.ts == pytest.approx(10.0)
    assert [type(o).__name__ for o in outputs] == [
        "HeatChange",
        "MarketingAction",
        "CampaignEffect",
    ]


def test_live_users_never_go_below_zero_and_unsubscribes_accumulate() -> None:
    state = PackageState("P1")
    feed(state, "subscribe", 2, T0)
    feed(state, "unsubscribe", 5, T0)
    assert (state.sr, state.tr) == (0, 5)


def test_heat_changes_are_published_only_on_change() -> None:
    state = PackageState("P1")
    first = feed(state, "push", 1, T0)
    assert first == [HeatChange("P1", None, "cold", 0.0, T0)]
    assert feed(state, "push", 1, T0) == []


def test_a_campaign_runs_from_its_level_to_the_next_change_and_is_graded() -> None:
    settings = make_settings()
    state = PackageState("P1")
    feed(state, "review", 10, T0, good=True)  # TS 10: medium, HL 1.0 -> level 2
    assert state.level == 2 and state.campaign is not None
    assert state.campaign["ts1"] == 0.0  # unrated before the 10th review: HL counted 0
    outputs = feed(state, "subscribe", 1000, T0 + 10 * DAY)  # TS 20: hot -> level 3
    actions = [o for o in outputs if isinstance(o, MarketingAction)]
    assert [(a.old_level, a.new_level) for a in actions] == [(2, 3)]
    finals = [o for o in outputs if isinstance(o, CampaignEffect) and o.final]
    assert len(finals) == 1
    final = finals[0]
    assert final.duration_days == pytest.approx(10.0)
    assert final.gain == pytest.approx(20.0)
    assert (final.achieved_grade, final.expected_grade, final.reached) == (
        "significant",
        "clear",
        True,
    )
    stopped = apply_campaign_command(
        state, CampaignCommand("P1", "stop", T0 + 12 * DAY), settings
    )
    assert (
        len(stopped) == 1
        and isinstance(stopped[0], CampaignEffect)
        and stopped[0].final
    )
    assert state.campaign is None and state.level == 3


def test_a_campaign_that_does_not_raise_ts_is_ineffective() -> None:
    c = make_settings().campaign
    effect = campaign_effect(
        {"id": "P1-c1", "package_id": "P1", "level": 1, "started_ms": T0, "ts1": 12.0},
        11.0,
        T0 + DAY,
        c,
        final=True,
    )
    assert effect.ineffective and effect.achieved_grade is None and not effect.reached


@pytest.mark.parametrize(
    ("days", "gain", "achieved", "expected", "reached"),
    [
        (3, 4, "slight", "slight", True),
        (7, 4, "slight", "clear", False),
        (29.9, 10, "clear", "clear", True),
        (30, 15, "significant", "significant", True),
        (40, 25, "significant", "significant", True),
        (40, 5, "slight", "significant", False),
    ],
)
def test_campaign_grades_compare_gain_with_duration(
    days: float, gain: float, achieved: str, expected: str, reached: bool
) -> None:
    c = make_settings().campaign
    campaign = {
        "id": "P1-c1",
        "package_id": "P1",
        "level": 1,
        "started_ms": T0,
        "ts1": 1.0,
    }
    effect = campaign_effect(
        campaign, 1.0 + gain, T0 + round(days * DAY), c, final=False
    )
    assert (effect.achieved_grade, effect.expected_grade, effect.reached) == (
        achieved,
        expected,
        reached,
    )


def test_replayed_switch_events_count_once() -> None:
    state = PackageState("P2")
    event = PackageEvent("P2", "subscribe", T0, None, "c1-r1:subscribe")
    apply_package_event(state, event, make_settings())
    apply_package_event(state, event, make_settings())
    assert state.sr == 1


def test_package_state_round_trips_through_json() -> None:
    state = PackageState("P1")
    feed(state, "review", 12, T0, good=True)
    assert PackageState.from_json(state.to_json()) == state
