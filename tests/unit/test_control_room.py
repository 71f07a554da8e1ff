"""ClusterView: output events and worker stats folded into the page's snapshot."""

from __future__ import annotations

from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from streams.control_room import (
    PAGE_HTML,
    ClusterView,
    register_control_room,
    worker_stats_record,
)
from streams.metrics import Metrics
from tests.helpers import make_settings

NOW = 1_800_000_000.0  # epoch seconds


def tier(
    customer: str, new: int | None, old: int | None = None, ctype: str = "residential"
) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "customer_type": ctype,
        "old_tier": old,
        "new_tier": new,
        "band_counts": {"1": 0, "2": 3, "3": 0},
        "months": ["2024-01", "2024-02", "2024-03"],
        "at_ms": 1_712_000_000_000,
        "type": "tier_change",
        "version": 1,
    }


def heat(package: str, new: str, ts: float, at_ms: int) -> dict[str, Any]:
    return {
        "package_id": package,
        "old_heat": None,
        "new_heat": new,
        "ts": ts,
        "at_ms": at_ms,
    }


def effect(
    package: str,
    n: int,
    *,
    ts1: float,
    ts2: float,
    final: bool = False,
    at_ms: int = 2_000,
    grade: str | None = "clear",
) -> dict[str, Any]:
    ineffective = ts2 <= ts1
    return {
        "campaign_id": f"{package}-c{n}",
        "package_id": package,
        "level": 2,
        "final": final,
        "started_ms": 1_000,
        "ended_ms": at_ms if final else None,
        "duration_days": 1.5,
        "ts1": ts1,
        "ts2": ts2,
        "gain": ts2 - ts1,
        "ineffective": ineffective,
        "achieved_grade": None if ineffective else grade,
        "expected_grade": "slight",
        "reached": not ineffective,
        "at_ms": at_ms,
    }


def stats(
    worker: str,
    wall_s: float,
    readings: float,
    messages: float = 0.0,
    lag: dict[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "worker_id": worker,
        "wall_ms": int(wall_s * 1000),
        "readings_total": readings,
        "messages_total": messages,
        "lag_seconds": lag or {},
    }


def test_empty_view_has_every_type_with_zero_counts() -> None:
    snap = ClusterView().snapshot(NOW)
    assert list(snap["tiers"]) == ["primary", "secondary", "tertiary", "residential"]
    assert snap["tiers"]["primary"] == {"1": 0, "2": 0, "3": 0, "none": 0}
    assert snap["packages"] == [] and snap["tier_changes"] == []
    assert snap["throughput"]["readings_per_s"] is None
    assert snap["lag_seconds"] == {} and snap["workers"] == []


def test_tier_distribution_counts_the_latest_tier_per_customer() -> None:
    view = ClusterView()
    view.apply("tier-changes", tier("a", 2))
    view.apply("tier-changes", tier("b", 2))
    view.apply("tier-changes", tier("c", None, ctype="primary"))
    view.apply("tier-changes", tier("a", 1, old=2))  # a moves: counted once
    view.apply("tier-changes", tier("b", None, old=2))
    snap = view.snapshot(NOW)
    assert snap["tiers"]["residential"] == {"1": 1, "2": 0, "3": 0, "none": 1}
    assert snap["tiers"]["primary"] == {"1": 0, "2": 0, "3": 0, "none": 1}
    assert snap["customers"] == 3


def test_a_duplicate_tier_change_counts_nothing_twice() -> None:
    view = ClusterView()
    for _ in range(3):
        view.apply("tier-changes", tier("a", 3))
    assert view.snapshot(NOW)["tiers"]["residential"]["3"] == 1


def test_a_customer_whose_type_changes_moves_between_types() -> None:
    view = ClusterView()
    view.apply("tier-changes", tier("a", 2, ctype="secondary"))
    view.apply("tier-changes", tier("a", 2, ctype="tertiary"))
    snap = view.snapshot(NOW)
    assert snap["tiers"]["secondary"]["2"] == 0
    assert snap["tiers"]["tertiary"]["2"] == 1


def test_unknown_customer_type_gets_its_own_row() -> None:
    view = ClusterView()
    view.apply("tier-changes", {**tier("a", 1), "customer_type": None})
    assert view.snapshot(NOW)["tiers"]["unknown"]["1"] == 1


def test_recent_tier_changes_are_newest_first_and_capped() -> None:
    view = ClusterView(recent=20)
    for n in range(25):
        view.apply("tier-changes", tier(f"c{n}", 2))
    recent = view.snapshot(NOW)["tier_changes"]
    assert len(recent) == 20
    assert recent[0]["customer_id"] == "c24" and recent[-1]["customer_id"] == "c5"
    assert set(recent[0]) == {
        "customer_id",
        "customer_type",
        "old_tier",
        "new_tier",
        "at_ms",
    }


def test_packages_join_heat_marketing_and_effects() -> None:
    view = ClusterView()
    view.apply("package-heat", heat("PK-A", "cold", 0.0, 1_000))
    view.apply("package-heat", heat("PK-A", "medium", 10.0, 2_000))
    view.apply(
        "marketing-actions",
        {
            "package_id": "PK-A",
            "old_level": None,
            "new_level": 2,
            "measures": ["home_page_12h_per_day"],
            "heat": "medium",
            "hl": 1.0,
            "at_ms": 2_000,
        },
    )
    view.apply("campaign-effects", effect("PK-A", 1, ts1=0.0, ts2=10.0, at_ms=2_000))
    (row,) = view.snapshot(NOW)["packages"]
    assert row["package_id"] == "PK-A"
    assert (row["ts"], row["heat"], row["level"]) == (10.0, "medium", 2)
    assert row["measures"] == ["home_page_12h_per_day"]
    assert (row["campaign_id"], row["campaign_running"]) == ("PK-A-c1", True)
    assert row["effect"]["achieved_grade"] == "clear"
    assert "ts_at_ms" not in row


def test_ts_follows_the_latest_event_time_across_topics() -> None:
    view = ClusterView()
    view.apply("campaign-effects", effect("PK-A", 1, ts1=0.0, ts2=12.0, at_ms=5_000))
    view.apply("package-heat", heat("PK-A", "medium", 10.0, 2_000))  # older
    assert view.snapshot(NOW)["packages"][0]["ts"] == 12.0
    view.apply("package-heat", heat("PK-A", "hot", 25.0, 6_000))
    assert view.snapshot(NOW)["packages"][0]["ts"] == 25.0


def test_a_final_effect_ends_the_running_campaign() -> None:
    view = ClusterView()
    view.apply("campaign-effects", effect("PK-A", 1, ts1=0.0, ts2=10.0))
    view.apply("campaign-effects", effect("PK-A", 1, ts1=0.0, ts2=10.0, final=True))
    row = view.snapshot(NOW)["packages"][0]
    assert row["campaign_running"] is False and row["effect"]["final"] is True


def test_ineffective_running_campaigns_are_counted() -> None:
    view = ClusterView()
    view.apply("campaign-effects", effect("PK-A", 1, ts1=10.0, ts2=0.0))
    view.apply("campaign-effects", effect("PK-B", 1, ts1=10.0, ts2=4.0, final=True))
    view.apply("campaign-effects", effect("PK-C", 1, ts1=0.0, ts2=4.0))
    snap = view.snapshot(NOW)
    assert snap["ineffective_running"] == 1  # PK-B ended, PK-C is effective
    effects = snap["campaign_effects"]
    assert [e["campaign_id"] for e in effects] == ["PK-C-c1", "PK-B-c1", "PK-A-c1"]
    assert [e["ineffective"] for e in effects] == [False, True, True]


def test_campaign_effects_are_capped() -> None:
    view = ClusterView(recent=5)
    for n in range(8):
        view.apply("campaign-effects", effect("PK-A", n, ts1=0.0, ts2=1.0))
    assert len(view.snapshot(NOW)["campaign_effects"]) == 5


@pytest.mark.parametrize(
    ("topic", "event"),
    [
        ("tier-changes", {"new_tier": 1}),
        ("tier-changes", {"customer_id": 7, "new_tier": 1}),
        ("package-heat", {"package_id": "P"}),
        ("campaign-effects", {"package_id": "P"}),
        ("worker-stats", {"worker_id": "w"}),
        ("dead-letters", {"topic": "x"}),
    ],
)
def test_unusable_events_are_ignored_and_counted(
    topic: str, event: dict[str, Any]
) -> None:
    view = ClusterView()
    version = view.version
    assert view.apply(topic, event) is False
    snap = view.snapshot(NOW)
    assert snap["ignored"] == 1 and snap["version"] == version
    assert snap["customers"] == 0


def test_version_moves_on_every_change() -> None:
    view = ClusterView()
    before = view.version
    view.apply("tier-changes", tier("a", 1))
    assert view.version == before + 1
    assert view.snapshot(NOW)["events"]["tier-changes"] == 1


def test_cluster_throughput_sums_worker_rates() -> None:
    view = ClusterView()
    view.apply("worker-stats", stats("w1", NOW - 10, 1_000, 10))
    view.apply("worker-stats", stats("w1", NOW - 5, 2_000, 20))  # 200/s
    view.apply("worker-stats", stats("w2", NOW - 9, 0, 0))
    view.apply("worker-stats", stats("w2", NOW - 4, 500, 5))  # 100/s
    snap = view.snapshot(NOW)
    assert snap["throughput"]["readings_per_s"] == pytest.approx(300.0)
    assert snap["throughput"]["messages_per_s"] == pytest.approx(3.0)
    assert snap["throughput"]["readings_total"] == 2_500
    assert [w["worker_id"] for w in snap["workers"]] == ["w1", "w2"]


def test_a_single_record_gives_no_rate_yet() -> None:
    view = ClusterView()
    view.apply("worker-stats", stats("w1", NOW - 1, 1_000))
    snap = view.snapshot(NOW)
    assert snap["throughput"]["readings_per_s"] is None
    assert snap["workers"][0]["readings_per_s"] is None


def test_a_restarted_worker_counts_from_zero_again() -> None:
    view = ClusterView()
    view.apply("worker-stats", stats("w1", NOW - 10, 5_000))
    view.apply("worker-stats", stats("w1", NOW - 5, 250))
    assert view.snapshot(NOW)["throughput"]["readings_per_s"] == pytest.approx(50.0)


def test_older_or_duplicate_stats_records_are_ignored() -> None:
    view = ClusterView()
    view.apply("worker-stats", stats("w1", NOW - 10, 100))
    view.apply("worker-stats", stats("w1", NOW - 5, 600))
    assert view.apply("worker-stats", stats("w1", NOW - 5, 600)) is False
    assert view.apply("worker-stats", stats("w1", NOW - 8, 300)) is False
    assert view.snapshot(NOW)["throughput"]["readings_per_s"] == pytest.approx(100.0)


def test_workers_silent_for_more_than_30_s_are_dropped() -> None:
    view = ClusterView(stale_after_s=30.0)
    view.apply("worker-stats", stats("gone", NOW - 40, 100, lag={"customers": 99.0}))
    view.apply("worker-stats", stats("live", NOW - 29, 100, lag={"customers": 2.0}))
    snap = view.snapshot(NOW)
    assert [w["worker_id"] for w in snap["workers"]] == ["live"]
    assert snap["lag_seconds"] == {"customers": 2.0}
    assert snap["workers"][0]["age_s"] == 29.0


def test_lag_is_the_maximum_per_topic_over_workers() -> None:
    view = ClusterView()
    view.apply("worker-stats", stats("w1", NOW, 0, lag={"meter-readings": 3.5}))
    view.apply(
        "worker-stats",
        stats("w2", NOW, 0, lag={"meter-readings": 1.0, "customers": 0.5}),
    )
    assert view.snapshot(NOW)["lag_seconds"] == {
        "customers": 0.5,
        "meter-readings": 3.5,
    }


def test_reset_forgets_everything() -> None:
    view = ClusterView()
    view.apply("tier-changes", tier("a", 1))
    view.apply("worker-stats", stats("w1", NOW, 0))
    view.reset()
    snap = view.snapshot(NOW)
    assert snap["customers"] == 0 and snap["workers"] == []


def test_worker_stats_record_reads_the_registry() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.readings.inc(48)
    metrics.messages.labels(topic="meter-readings").inc(2)
    metrics.messages.labels(topic="customers").inc()
    metrics.event_lag.labels(topic="meter-readings").set(12.3456)
    record = worker_stats_record(metrics, "host:6066", NOW)
    assert record == {
        "worker_id": "host:6066",
        "wall_ms": int(NOW * 1000),
        "readings_total": 48.0,
        "messages_total": 3.0,
        "lag_seconds": {"meter-readings": 12.346},
    }
    view = ClusterView()
    assert view.apply("worker-stats", record) is True


def test_the_page_is_self_contained() -> None:
    assert "<script" in PAGE_HTML and 'EventSource("/events")' in PAGE_HTML
    assert "http://" not in PAGE_HTML and "https://" not in PAGE_HTML
    assert "innerHTML" not in PAGE_HTML  # text goes in with textContent only


def test_register_adds_the_routes_and_replaces_faust_index(tmp_path: Any) -> None:
    settings = make_settings(**{"streams.topic_prefix": "unit."})
    app = faust.App(
        "control-room-unit",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        datadir=str(tmp_path),
        web_port=6066,
    )
    view = register_control_room(app, settings, Metrics(CollectorRegistry()), 6066)
    assert isinstance(view, ClusterView)
    assert {"/", "/events", "/api/overview"} <= set(app.web.views)
    app.web.init_server()  # faust's own "/" would clash here
    routes = {
        (r.method, r.resource.canonical)
        for r in app.web.web_app.router.routes()  # type: ignore[attr-defined]
        if r.resource is not None
    }
    assert {("GET", "/"), ("GET", "/events"), ("GET", "/api/overview")} <= routes
