"""The domain's Prometheus metrics, on a registry passed in.

Naming: prefix ``tariffstream_``, base units, counters end in ``_total``; labels
are bounded (topic, reason, customer type, tier, heat, grade), never a customer.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.readings = Counter(
            "tariffstream_readings_total", "Meter readings booked", registry=registry
        )
        self.messages = Counter(
            "tariffstream_messages_total",
            "Input messages processed",
            ["topic"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "tariffstream_dead_letters_total",
            "Inputs sent to the dead-letter topic",
            ["topic", "reason"],
            registry=registry,
        )
        self.suspect_readings = Counter(
            "tariffstream_suspect_readings_total",
            "Register readings that dropped without a declared maximum",
            registry=registry,
        )
        self.tier_changes = Counter(
            "tariffstream_tier_changes_total",
            "Analyzed tier changes",
            ["customer_type", "old_tier", "new_tier"],
            registry=registry,
        )
        self.recommendations = Counter(
            "tariffstream_recommendations_total",
            "Recommendations by outcome: sent, accepted, declined",
            ["outcome"],
            registry=registry,
        )
        self.catalog_gaps = Counter(
            "tariffstream_catalog_gaps_total",
            "Tiers with no package in the catalog",
            ["customer_type", "tier"],
            registry=registry,
        )
        self.heat_changes = Counter(
            "tariffstream_heat_changes_total",
            "Package heat changes",
            ["heat"],
            registry=registry,
        )
        self.marketing_changes = Counter(
            "tariffstream_marketing_level_changes_total",
            "Marketing level changes",
            ["level"],
            registry=registry,
        )
        self.campaign_results = Counter(
            "tariffstream_campaign_results_total",
            "Final campaign effects by achieved grade (ineffective for none)",
            ["grade"],
            registry=registry,
        )
        self.event_lag = Gauge(
            "tariffstream_event_time_lag_seconds",
            "Wall time minus the event time of the last message processed, per topic",
            ["topic"],
            registry=registry,
        )
        # Cluster-wide figures, from the output topics every worker follows (the
        # control room's view): each worker reports the whole cluster, so a
        # dashboard takes max over workers, not sum.
        self.customers = Gauge(
            "tariffstream_customers",
            "Customers per type and analyzed tier (tier none: not enough months)",
            ["customer_type", "tier"],
            registry=registry,
        )
        self.packages = Gauge(
            "tariffstream_packages",
            "Packages per heat level",
            ["heat"],
            registry=registry,
        )
        self.campaigns_running = Gauge(
            "tariffstream_campaigns_running", "Campaigns running", registry=registry
        )
        self.tables_recovered = Gauge(
            "tariffstream_tables_recovered",
            "1 once this worker's tables finished recovery, else 0",
            registry=registry,
        )
        self.latency = Histogram(
            "tariffstream_processing_latency_seconds",
            "Time from a message's broker timestamp to its state update",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
