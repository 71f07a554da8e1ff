"""What terminals read: customer, package and campaign views, and alerts.

Views are plain JSON-ready dicts derived from the rules' state, so the read
model holds exactly what the tables hold, in the shape a terminal wants.
"""

from __future__ import annotations

from typing import Any

from config import Settings
from models.events import CampaignEffect, CatalogGap, to_kwh
from rules.consumption import CustomerState, month_views
from rules.packages import PackageState, good_review_rate

__all__ = [
    "RECENT_MONTHS",
    "campaign_view",
    "customer_view",
    "effect_alert",
    "package_view",
]

# Months shown to a terminal: a year and the month in progress.
RECENT_MONTHS = 13


def customer_view(state: CustomerState, settings: Settings) -> dict[str, Any]:
    months = month_views(state, settings)[-RECENT_MONTHS:]
    return {
        "customer_id": state.customer_id,
        "customer_type": state.customer_type,
        "tier_on_record": state.tier_on_record,
        "package_on_record": state.package_on_record,
        "analyzed_tier": state.tier,
        "latest_reading_ms": state.watermark_ms,
        "months": [
            {
                "month": m.label,
                "kwh": round(to_kwh(m.mwh), 6),
                "coverage": round(m.coverage, 4),
                "closed": m.closed,
                "counted": m.counted,
                "band": m.band,
            }
            for m in months
        ],
        "pending_recommendation": state.pending,
        "declined_package": state.declined_package,
    }


def package_view(state: PackageState, settings: Settings) -> dict[str, Any]:
    hl = good_review_rate(state.reviews, state.good, settings.packages)
    return {
        "package_id": state.package_id,
        "sr": state.sr,
        "tr": state.tr,
        "tc": state.tc,
        "reviews": state.reviews,
        "good_reviews": state.good,
        "hl": hl,
        "rated": hl is not None,
        "ts": state.ts,
        "heat": state.heat,
        "level": state.level,
        "campaign": state.campaign,
    }


def campaign_view(effect: CampaignEffect) -> dict[str, Any]:
    view = effect.to_dict()
    view["status"] = "ended" if effect.final else "running"
    return view


def effect_alert(effect: CampaignEffect) -> dict[str, Any] | None:
    """A management alert for an ineffective campaign or a final result."""
    if not (effect.ineffective or effect.final):
        return None
    kind = "ineffective_campaign" if effect.ineffective else "campaign_result"
    suffix = "final" if effect.final else "running"
    return {
        "alert_id": f"{effect.campaign_id}:{kind}:{suffix}",
        "kind": kind,
        "package_id": effect.package_id,
        "campaign_id": effect.campaign_id,
        "achieved_grade": effect.achieved_grade,
        "expected_grade": effect.expected_grade,
        "reached": effect.reached,
        "gain": effect.gain,
        "at_ms": effect.at_ms,
    }


def catalog_gap_alert(gap: CatalogGap) -> dict[str, Any]:
    """Management sees that a tier has customers but no package in the catalog."""
    return {
        "alert_id": f"catalog-gap:{gap.customer_type}:{gap.tier}",
        "kind": "catalog_gap",
        "customer_type": gap.customer_type,
        "tier": gap.tier,
        "at_ms": gap.at_ms,
    }
