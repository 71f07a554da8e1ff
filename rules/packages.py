"""A package's counters, usage value TS, heat, marketing level and campaigns.

Campaign durations run on event time: a campaign starts at the event that gave
the package its level and ends at the event that changed or cleared it, or at
an operator's stop command.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from config import CampaignSettings, PackageSettings, Settings
from models.events import (
    CampaignCommand,
    CampaignEffect,
    HeatChange,
    MarketingAction,
    PackageEvent,
)
from rules.ledger import DAY_MS

__all__ = [
    "GRADES",
    "PackageState",
    "apply_campaign_command",
    "apply_package_event",
    "campaign_effect",
    "good_review_rate",
    "heat_of",
    "marketing_level",
    "usage_value",
]

GRADES = ("slight", "clear", "significant")
PackageOutput = HeatChange | MarketingAction | CampaignEffect


def usage_value(
    sr: int, hl: float, tr: int, tc: int, settings: PackageSettings
) -> float:
    """TS = a1*SR + a2*HL - a3*TR/(TC+1): live users and good reviews raise it,
    unsubscribes per marketing push lower it. The one place the formula lives."""
    return settings.a1 * sr + settings.a2 * hl - settings.a3 * tr / (tc + 1)


def heat_of(ts: float, settings: PackageSettings) -> str:
    if ts < settings.x1:
        return "cold"
    return "medium" if ts < settings.x2 else "hot"


def marketing_level(
    heat: str, hl: float | None, settings: PackageSettings
) -> int | None:
    """Level 3 for hot, 2 for medium, 1 (strongest) for cold, when HL is good."""
    if hl is None or hl <= settings.good_review_threshold:
        return None
    return {"hot": 3, "medium": 2, "cold": 1}[heat]


def good_review_rate(
    reviews: int, good: int, settings: PackageSettings
) -> float | None:
    """HL, or None while the package has too few reviews to be rated."""
    if reviews < max(settings.min_reviews, 1):
        return None
    return good / reviews


@dataclass(slots=True)
class PackageState:
    """Everything kept about one package; a Faust table value."""

    package_id: str
    sr: int = 0
    tr: int = 0
    tc: int = 0
    reviews: int = 0
    good: int = 0
    ts: float = 0.0
    heat: str | None = None
    level: int | None = None
    campaign: dict[str, Any] | None = None
    campaign_seq: int = 0
    last_effect: list[Any] | None = None
    applied_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PackageState:
        return cls(**data)


# Event ids remembered per package to make replayed switch events count once.
_APPLIED_IDS_KEPT = 64


def apply_package_event(
    state: PackageState, event: PackageEvent, settings: Settings
) -> list[PackageOutput]:
    """Count the event, then re-derive TS, heat, level and the campaign."""
    if event.event_id is not None:
        if event.event_id in state.applied_ids:
            return []
        state.applied_ids = [
            *state.applied_ids[-(_APPLIED_IDS_KEPT - 1) :],
            event.event_id,
        ]
    if event.kind == "subscribe":
        state.sr += 1
    elif event.kind == "unsubscribe":
        state.sr = max(state.sr - 1, 0)
        state.tr += 1
    elif event.kind == "push":
        state.tc += 1
    else:
        state.reviews += 1
        state.good += 1 if event.good else 0
    return _rederive(state, settings, event.at_ms)


def _rederive(
    state: PackageState, settings: Settings, at_ms: int
) -> list[PackageOutput]:
    p = settings.packages
    hl = good_review_rate(state.reviews, state.good, p)
    ts_before = state.ts
    state.ts = usage_value(state.sr, hl or 0.0, state.tr, state.tc, p)
    outputs: list[PackageOutput] = []
    heat = heat_of(state.ts, p)
    if heat != state.heat:
        outputs.append(HeatChange(state.package_id, state.heat, heat, state.ts, at_ms))
        state.heat = heat
    level = marketing_level(heat, hl, p)
    if level != state.level:
        measures = list(settings.marketing[level]) if level is not None else []
        outputs.append(
            MarketingAction(
                state.package_id, state.level, level, measures, heat, hl or 0.0, at_ms
            )
        )
        if state.campaign is not None:
            outputs.extend(_end_campaign(state, settings.campaign, at_ms))
        state.level = level
        if level is not None:
            state.campaign_seq += 1
            state.campaign = {
                "id": f"{state.package_id}-c{state.campaign_seq}",
                "package_id": state.package_id,
                "level": level,
                "started_ms": at_ms,
                "ts1": ts_before,
            }
    if state.campaign is not None:
        effect = campaign_effect(
            state.campaign, state.ts, at_ms, settings.campaign, final=False
        )
        signature = [effect.ineffective, effect.achieved_grade, effect.expected_grade]
        if signature != state.last_effect:
            state.last_effect = signature
            outputs.append(effect)
    return outputs


def apply_campaign_command(
    state: PackageState, command: CampaignCommand, settings: Settings
) -> list[PackageOutput]:
    """An operator stops the running campaign; the level itself stays."""
    if state.campaign is None:
        return []
    return _end_campaign(state, settings.campaign, command.at_ms)


def _end_campaign(
    state: PackageState, settings: CampaignSettings, at_ms: int
) -> list[PackageOutput]:
    assert state.campaign is not None
    effect = campaign_effect(state.campaign, state.ts, at_ms, settings, final=True)
    state.campaign = None
    state.last_effect = None
    return [effect]


def duration_class(days: float, settings: CampaignSettings) -> str:
    if days >= settings.t2_days:
        return "significant"
    return "clear" if days >= settings.t1_days else "slight"


def gain_grade(gain: float, settings: CampaignSettings) -> str | None:
    """The grade whose (lower, upper] range holds the gain; above the top, the top."""
    if gain > settings.significant.upper:
        return "significant"
    for name in GRADES:
        grade_range = getattr(settings, name)
        if grade_range.lower < gain <= grade_range.upper:
            return str(name)
    return None


def campaign_effect(
    campaign: dict[str, Any],
    ts2: float,
    at_ms: int,
    settings: CampaignSettings,
    final: bool,
) -> CampaignEffect:
    """Grade a campaign: its TS gain against what its duration should bring."""
    started = campaign["started_ms"]
    days = (at_ms - started) / DAY_MS
    gain = ts2 - campaign["ts1"]
    ineffective = ts2 <= campaign["ts1"]
    achieved = None if ineffective else gain_grade(gain, settings)
    expected = duration_class(days, settings)
    reached = achieved is not None and GRADES.index(achieved) >= GRADES.index(expected)
    return CampaignEffect(
        campaign["id"],
        campaign["package_id"],
        campaign["level"],
        final,
        started,
        at_ms if final else None,
        days,
        campaign["ts1"],
        ts2,
        gain,
        ineffective,
        achieved,
        expected,
        reached,
        at_ms,
    )
