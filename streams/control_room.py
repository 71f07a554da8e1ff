# ruff: noqa: E501 (only the embedded page at the end has long lines)
"""The control-room page: the whole cluster's figures, live, on every worker.

Every worker follows the output topics from the beginning with an aiokafka
consumer of its own, outside the consumer group (as ``agents.catalog`` does), and
folds them into a :class:`ClusterView`. Throughput and lag live in each worker's
Prometheus registry, so every worker publishes a small stats record to
``<prefix>worker-stats`` every few seconds and the view keeps the latest per
worker. Whichever worker serves the page therefore shows the same figures.

Routes on faust's web server: ``/`` (the page), ``/events`` (server-sent events,
a JSON snapshot every second or on change) and ``/api/overview`` (one snapshot).
Outputs carry customer ids, types and tiers only; no personal data is shown.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

import faust
import orjson
from aiohttp import web as aioweb
from aiokafka import AIOKafkaConsumer, TopicPartition

from config import Settings
from streams.metrics import Metrics
from streams.topology import INPUTS, topic_name

__all__ = [
    "FOLLOWED",
    "WORKER_STATS",
    "ClusterView",
    "register_control_room",
    "worker_stats_record",
]

logger = logging.getLogger(__name__)

WORKER_STATS = "worker-stats"
FOLLOWED = (
    "tier-changes",
    "package-heat",
    "marketing-actions",
    "campaign-effects",
    WORKER_STATS,
)
CUSTOMER_TYPES = ("primary", "secondary", "tertiary", "residential")
TIER_KEYS = ("1", "2", "3", "none")
STATS_INTERVAL_S = 5.0
# Built-in faust views that also mount "/": aiohttp refuses a second GET route.
_ROOT_BLUEPRINTS = (
    "faust.web.apps.production_index:blueprint",
    "faust.web.apps.stats:blueprint",
)


def _tier_key(tier: Any) -> str:
    return str(tier) if tier in (1, 2, 3) else "none"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


class ClusterView:
    """Output events and worker stats folded into one snapshot of the cluster.

    Pure: no I/O and no clock except the ``now`` (epoch seconds) passed in.
    Events are applied in topic order; replaying a topic from the beginning gives
    the same tier distribution and package table (a duplicate changes nothing).
    """

    def __init__(self, recent: int = 20, stale_after_s: float = 30.0) -> None:
        self.recent = recent
        self.stale_after_s = stale_after_s
        self.version = 0
        self.reset()

    def reset(self) -> None:
        self.version += 1
        self._customers: dict[str, tuple[str, str]] = {}  # id -> (type, tier key)
        self._distribution: dict[str, dict[str, int]] = {}
        self._packages: dict[str, dict[str, Any]] = {}
        self._tier_changes: deque[dict[str, Any]] = deque(maxlen=self.recent)
        self._effects: deque[dict[str, Any]] = deque(maxlen=self.recent)
        self._counts: dict[str, int] = {name: 0 for name in FOLLOWED}
        self._ignored = 0
        # worker id -> (previous record, latest record)
        self._workers: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = {}

    # -- folding ---------------------------------------------------------------

    def apply(self, topic: str, event: Mapping[str, Any]) -> bool:
        """Fold one event of ``topic`` (short name); False when it was unusable."""
        handler = {
            "tier-changes": self._tier_change,
            "package-heat": self._heat,
            "marketing-actions": self._marketing,
            "campaign-effects": self._effect,
            WORKER_STATS: self._worker_stats,
        }.get(topic)
        try:
            used = handler is not None and handler(event)
        except (KeyError, TypeError, ValueError):
            used = False
        if used:
            self._counts[topic] += 1
            self.version += 1
        else:
            self.ignore()
        return used

    def ignore(self) -> None:
        """Count an undecodable or unusable record."""
        self._ignored += 1

    def _tier_change(self, event: Mapping[str, Any]) -> bool:
        customer = event["customer_id"]
        if not isinstance(customer, str):
            return False
        ctype = event.get("customer_type")
        ctype = ctype if isinstance(ctype, str) else "unknown"
        tier = _tier_key(event.get("new_tier"))
        before = self._customers.get(customer)
        if before is not None:
            self._distribution[before[0]][before[1]] -= 1
        counts = self._distribution.setdefault(ctype, dict.fromkeys(TIER_KEYS, 0))
        counts[tier] += 1
        self._customers[customer] = (ctype, tier)
        self._tier_changes.appendleft(
            {
                "customer_id": customer,
                "customer_type": ctype,
                "old_tier": event.get("old_tier"),
                "new_tier": event.get("new_tier"),
                "at_ms": _int(event.get("at_ms")),
            }
        )
        return True

    def _package(self, package_id: Any) -> dict[str, Any]:
        if not isinstance(package_id, str):
            raise TypeError("package_id")
        return self._packages.setdefault(
            package_id,
            {
                "package_id": package_id,
                "ts": None,
                "ts_at_ms": None,
                "heat": None,
                "level": None,
                "measures": [],
                "campaign_id": None,
                "campaign_running": False,
                "effect": None,
            },
        )

    def _set_ts(self, row: dict[str, Any], ts: Any, at_ms: Any) -> None:
        value, at = _number(ts), _int(at_ms)
        if value is None:
            return
        # heat and effects are on different topics: the later event time wins.
        if row["ts_at_ms"] is None or at is None or at >= row["ts_at_ms"]:
            row["ts"], row["ts_at_ms"] = value, at

    def _heat(self, event: Mapping[str, Any]) -> bool:
        row = self._package(event["package_id"])
        row["heat"] = event["new_heat"]
        self._set_ts(row, event.get("ts"), event.get("at_ms"))
        return True

    def _marketing(self, event: Mapping[str, Any]) -> bool:
        row = self._package(event["package_id"])
        row["level"] = event.get("new_level")
        measures = event.get("measures")
        row["measures"] = list(measures) if isinstance(measures, list) else []
        return True

    def _effect(self, event: Mapping[str, Any]) -> bool:
        row = self._package(event["package_id"])
        final = bool(event.get("final"))
        effect = {
            "campaign_id": event["campaign_id"],
            "package_id": row["package_id"],
            "level": event.get("level"),
            "final": final,
            "ineffective": bool(event.get("ineffective")),
            "achieved_grade": event.get("achieved_grade"),
            "expected_grade": event.get("expected_grade"),
            "reached": bool(event.get("reached")),
            "gain": _number(event.get("gain")),
            "ts1": _number(event.get("ts1")),
            "ts2": _number(event.get("ts2")),
            "duration_days": _number(event.get("duration_days")),
            "at_ms": _int(event.get("at_ms")),
        }
        row["campaign_id"] = effect["campaign_id"]
        row["campaign_running"] = not final
        row["effect"] = effect
        self._set_ts(row, event.get("ts2"), event.get("at_ms"))
        self._effects.appendleft(effect)
        return True

    def _worker_stats(self, event: Mapping[str, Any]) -> bool:
        worker = event["worker_id"]
        wall_ms = _int(event.get("wall_ms"))
        if not isinstance(worker, str) or wall_ms is None:
            return False
        record = {
            "worker_id": worker,
            "wall_ms": wall_ms,
            "readings_total": _number(event.get("readings_total")) or 0.0,
            "messages_total": _number(event.get("messages_total")) or 0.0,
            "lag_seconds": {
                str(k): float(v)
                for k, v in dict(event.get("lag_seconds") or {}).items()
                if _number(v) is not None
            },
        }
        known = self._workers.get(worker)
        if known is not None and wall_ms <= known[1]["wall_ms"]:
            return False  # a duplicate or an older record
        self._workers[worker] = (known[1] if known else None, record)
        return True

    # -- reading ---------------------------------------------------------------

    def live_workers(self, now: float) -> list[dict[str, Any]]:
        """Workers heard from within ``stale_after_s``, with their rates."""
        rows = []
        for worker in sorted(self._workers):
            previous, latest = self._workers[worker]
            age = now - latest["wall_ms"] / 1000
            if age > self.stale_after_s:
                continue
            readings_rate = messages_rate = None
            if previous is not None:
                dt = (latest["wall_ms"] - previous["wall_ms"]) / 1000
                readings_rate = _rate(
                    previous["readings_total"], latest["readings_total"], dt
                )
                messages_rate = _rate(
                    previous["messages_total"], latest["messages_total"], dt
                )
            rows.append(
                {
                    **latest,
                    "age_s": round(max(age, 0.0), 1),
                    "readings_per_s": readings_rate,
                    "messages_per_s": messages_rate,
                }
            )
        return rows

    def snapshot(self, now: float) -> dict[str, Any]:
        workers = self.live_workers(now)
        lag: dict[str, float] = {}
        for row in workers:
            for topic, seconds in row["lag_seconds"].items():
                lag[topic] = max(seconds, lag.get(topic, seconds))
        types = list(CUSTOMER_TYPES) + sorted(
            t for t in self._distribution if t not in CUSTOMER_TYPES
        )
        distribution = {
            ctype: dict(self._distribution.get(ctype, dict.fromkeys(TIER_KEYS, 0)))
            for ctype in types
        }
        packages = [
            {k: v for k, v in row.items() if k != "ts_at_ms"}
            for _, row in sorted(self._packages.items())
        ]
        return {
            "generated_ms": int(now * 1000),
            "version": self.version,
            "tiers": distribution,
            "customers": len(self._customers),
            "packages": packages,
            "tier_changes": list(self._tier_changes),
            "campaign_effects": list(self._effects),
            "ineffective_running": sum(
                1
                for row in self._packages.values()
                if row["campaign_running"] and row["effect"]["ineffective"]
            ),
            "throughput": {
                "readings_per_s": _sum_rates(workers, "readings_per_s"),
                "messages_per_s": _sum_rates(workers, "messages_per_s"),
                "readings_total": sum(r["readings_total"] for r in workers),
                "messages_total": sum(r["messages_total"] for r in workers),
            },
            "lag_seconds": dict(sorted(lag.items())),
            "workers": workers,
            "events": dict(self._counts),
            "ignored": self._ignored,
        }


def _rate(before: float, after: float, seconds: float) -> float | None:
    if seconds <= 0:
        return None
    # A restarted worker starts its counters again from zero.
    increase = after - before if after >= before else after
    return increase / seconds


def _sum_rates(workers: list[dict[str, Any]], field: str) -> float | None:
    rates = [r[field] for r in workers if r[field] is not None]
    return sum(rates) if rates else None


def worker_stats_record(
    metrics: Metrics, worker_id: str, wall_s: float
) -> dict[str, Any]:
    """This worker's figures from its Prometheus registry, as published."""
    registry = metrics.registry
    messages = 0.0
    lag: dict[str, float] = {}
    for name in INPUTS:
        labels = {"topic": name}
        messages += (
            registry.get_sample_value("tariffstream_messages_total", labels) or 0
        )
        seconds = registry.get_sample_value(
            "tariffstream_event_time_lag_seconds", labels
        )
        if seconds is not None:
            lag[name] = round(seconds, 3)
    return {
        "worker_id": worker_id,
        "wall_ms": int(wall_s * 1000),
        "readings_total": registry.get_sample_value("tariffstream_readings_total")
        or 0.0,
        "messages_total": messages,
        "lag_seconds": lag,
    }


class OutputFollower:
    """Every partition of the followed topics, from the beginning, into a view."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        view: ClusterView,
        stats_backlog: int = 500,
        committed_only: bool = False,
    ) -> None:
        self.bootstrap = bootstrap
        # Under exactly-once, outputs of a transaction that is later aborted (a
        # worker died mid-way) are not shown; they would be published again.
        self.isolation_level = (
            "read_committed" if committed_only else "read_uncommitted"
        )
        self.prefix = prefix
        self.view = view
        # worker-stats only matters for the last few records per worker.
        self.stats_backlog = stats_backlog
        self.topics = {f"{prefix}{name}": name for name in FOLLOWED}

    async def run(self) -> None:
        """Follow until cancelled; start over (view cleared) after a failure."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("control room follower failed; starting over in 5 s")
                await asyncio.sleep(5.0)
                self.view.reset()

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level=self.isolation_level,
        )
        await consumer.start()
        try:
            assigned: set[TopicPartition] = set()
            next_discovery = 0.0
            while True:
                if time.monotonic() >= next_discovery:
                    assigned = await self._discover(consumer, assigned)
                    complete = len({tp.topic for tp in assigned}) == len(self.topics)
                    next_discovery = time.monotonic() + (30.0 if complete else 2.0)
                if not assigned:
                    await asyncio.sleep(1.0)
                    continue
                batch = await consumer.getmany(timeout_ms=500, max_records=2000)
                for tp, records in batch.items():
                    name = self.topics[tp.topic]
                    for record in records:
                        self._fold(name, record.value)
        finally:
            await consumer.stop()

    def _fold(self, name: str, raw: bytes | None) -> None:
        try:
            event = orjson.loads(raw or b"")
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            self.view.apply(name, event)
        else:
            self.view.ignore()

    async def _discover(
        self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
    ) -> set[TopicPartition]:
        # All topics' metadata, not just the assigned ones (a consumer with
        # assigned partitions only refreshes those); asking creates nothing.
        cluster = await consumer._client.fetch_all_metadata()
        found = {
            TopicPartition(topic, p)
            for topic in self.topics
            for p in cluster.partitions_for_topic(topic) or set()
        }
        new = found - assigned
        if not new:
            return assigned
        positions = {tp: await consumer.position(tp) for tp in assigned}
        consumer.assign(sorted(found))
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        stats = [tp for tp in new if self.topics[tp.topic] == WORKER_STATS]
        others = [tp for tp in new if tp not in stats]
        if others:
            await consumer.seek_to_beginning(*others)
        if stats:
            ends = await consumer.end_offsets(stats)
            starts = await consumer.beginning_offsets(stats)
            for tp in stats:
                consumer.seek(tp, max(starts[tp], ends[tp] - self.stats_backlog))
        logger.info("control room follows %d partitions", len(found))
        return found


def _drop_builtin_index(app: faust.App) -> None:
    """faust's own "/" views would clash with the control room's route."""
    manager = app.web.blueprints
    enabled = getattr(manager, "_enabled", None)
    if isinstance(enabled, list):
        enabled[:] = [e for e in enabled if e[1] not in _ROOT_BLUEPRINTS]


def register_control_room(
    app: faust.App,
    settings: Settings,
    metrics: Metrics,
    web_port: int,
    clock: Callable[[], float] = time.time,
) -> ClusterView:
    """Add ``/``, ``/events`` and ``/api/overview``; follow outputs, publish stats."""
    view = ClusterView()
    prefix = settings.streams.topic_prefix
    bootstrap = settings.streams.broker.split("://", 1)[-1]
    follower = OutputFollower(
        bootstrap,
        prefix,
        view,
        committed_only=settings.streams.processing_guarantee == "exactly_once",
    )
    worker_id = f"{socket.gethostname()}:{web_port}"
    stats_topic = app.topic(
        topic_name(settings, WORKER_STATS),
        partitions=1,
        key_serializer="raw",
        value_serializer="raw",
    )
    declared = False
    cache: dict[str, Any] = {"key": None, "body": b""}

    def snapshot_bytes() -> bytes:
        now = clock()
        key = (view.version, int(now))
        if cache["key"] != key:
            snap = view.snapshot(now)
            snap["served_by"] = worker_id
            cache["key"], cache["body"] = key, orjson.dumps(snap)
        return cast(bytes, cache["body"])

    async def follow_outputs() -> None:
        await follower.run()

    async def publish_stats() -> None:
        nonlocal declared
        try:
            if not declared:
                await stats_topic.maybe_declare()
                declared = True
            record = worker_stats_record(metrics, worker_id, clock())
            await stats_topic.send(key=worker_id.encode(), value=orjson.dumps(record))
        except Exception:  # the page is for operators; never stop the worker
            logger.exception("control room: publishing worker stats failed")

    class ControlRoomPage(faust.web.View):
        async def get(self, request: faust.web.Request) -> faust.web.Response:
            return self.bytes(PAGE_BYTES, content_type="text/html")

    class Overview(faust.web.View):
        async def get(self, request: faust.web.Request) -> faust.web.Response:
            return self.bytes(snapshot_bytes(), content_type="application/json")

    class Events(faust.web.View):
        async def get(self, request: faust.web.Request) -> faust.web.Response:
            if not isinstance(request, aioweb.Request):
                return self.error(501, "server-sent events need the aiohttp driver")
            return cast(faust.web.Response, await _stream_events(request))

    async def _stream_events(request: aioweb.Request) -> aioweb.StreamResponse:
        response = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        # EventSource reconnects by itself: end each stream after a while so a
        # worker's shutdown never waits long on an open page.
        deadline = time.monotonic() + 300.0
        sent_version, sent_at = -1, 0.0
        try:
            await response.write(b"retry: 2000\n\n")
            while time.monotonic() < deadline and not app.should_stop:
                moment = time.monotonic()
                if view.version != sent_version or moment - sent_at >= 1.0:
                    sent_version, sent_at = view.version, moment
                    body = snapshot_bytes()
                    await response.write(b"event: snapshot\ndata: " + body + b"\n\n")
                await asyncio.sleep(0.25)
        except ConnectionResetError:
            logger.debug("control room: an events client went away")
        return response

    _drop_builtin_index(app)
    app.page("/", name="control_room")(ControlRoomPage)
    app.page("/api/overview", name="control_room_overview")(Overview)
    app.page("/events", name="control_room_events")(Events)
    app.task(follow_outputs)
    app.timer(STATS_INTERVAL_S)(publish_stats)
    logger.info("control room registered worker_id=%s", worker_id)
    return view


# The page, self-contained (no CDN): inline CSS and a script that renders the
# snapshots from /api/overview and /events. Text goes in with textContent only.
PAGE_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tariffstream control room</title>
<style>
  :root { --bg: #f5f6f8; --card: #fff; --ink: #1d2330; --muted: #5d6677;
          --line: #dde1e8; --red: #c62828; --red-bg: #fdecea; --green: #2e7d32;
          --amber: #b26a00; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
         background: var(--bg); color: var(--ink); }
  header { display: flex; align-items: baseline; gap: 1.5rem; padding: .8rem 1.2rem;
           background: #1d2330; color: #fff; }
  header h1 { font-size: 1.2rem; margin: 0; }
  header .status { margin-left: auto; font-size: .9rem; color: #c9d1e0; }
  .dot { display: inline-block; width: .6rem; height: .6rem; border-radius: 50%;
         background: var(--amber); margin-right: .35rem; }
  .dot.live { background: #4caf50; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr));
         gap: 1rem; padding: 1rem 1.2rem; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
            padding: .8rem 1rem; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 1rem; margin: 0 0 .6rem; color: var(--muted); font-weight: 600;
       text-transform: uppercase; letter-spacing: .03em; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line);
           font-variant-numeric: tabular-nums; }
  th { font-size: .8rem; color: var(--muted); font-weight: 600; }
  td.num, th.num { text-align: right; }
  .figures { display: flex; flex-wrap: wrap; gap: 1.6rem; }
  .figure .value { font-size: 1.8rem; font-weight: 650; font-variant-numeric: tabular-nums; }
  .figure .label { font-size: .8rem; color: var(--muted); }
  tr.bad td, .bad { color: var(--red); }
  tr.bad { background: var(--red-bg); }
  .badge { display: inline-block; padding: 0 .4rem; border-radius: 3px; font-size: .8rem;
           border: 1px solid currentColor; }
  .heat-hot { color: var(--red); } .heat-medium { color: var(--amber); }
  .heat-cold { color: #1565c0; } .ok { color: var(--green); }
  .empty { color: var(--muted); font-style: italic; }
  footer { padding: 0 1.2rem 1rem; color: var(--muted); font-size: .8rem; }
</style>
</head>
<body data-sse-updates="0" data-version="">
<header>
  <h1>tariffstream control room</h1>
  <span id="served-by"></span>
  <span class="status"><span id="live-dot" class="dot"></span><span id="status">connecting…</span></span>
</header>
<main>
  <section class="wide" id="throughput-section">
    <h2>Throughput and lag (whole cluster)</h2>
    <div class="figures">
      <div class="figure"><div class="value" id="readings-rate">&ndash;</div><div class="label">readings / s</div></div>
      <div class="figure"><div class="value" id="messages-rate">&ndash;</div><div class="label">input messages / s</div></div>
      <div class="figure"><div class="value" id="readings-total">&ndash;</div><div class="label">readings booked (live workers)</div></div>
      <div class="figure"><div class="value" id="worker-count">&ndash;</div><div class="label">live workers</div></div>
      <div class="figure"><div class="value" id="customer-count">&ndash;</div><div class="label">customers with a tier record</div></div>
      <div class="figure"><div class="value" id="ineffective-count">&ndash;</div><div class="label">running campaigns ineffective</div></div>
    </div>
    <table id="lag-table"><thead><tr><th>input topic</th><th class="num">max event-time lag</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="tiers-section">
    <h2>Tier distribution per customer type</h2>
    <table id="tier-table">
      <thead><tr><th>customer type</th><th class="num">tier 1</th><th class="num">tier 2</th>
        <th class="num">tier 3</th><th class="num">no tier</th><th class="num">total</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="changes-section">
    <h2>Recent tier changes</h2>
    <table id="change-table">
      <thead><tr><th>customer</th><th>type</th><th>tier</th><th>event time (UTC)</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="wide" id="packages-section">
    <h2>Packages</h2>
    <table id="package-table">
      <thead><tr><th>package</th><th class="num">TS</th><th>heat</th><th>marketing level</th>
        <th>campaign</th><th>latest effect</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="wide" id="effects-section">
    <h2>Campaign effects (latest first; ineffective in red)</h2>
    <table id="effect-table">
      <thead><tr><th>campaign</th><th>level</th><th>state</th><th class="num">days</th>
        <th class="num">TS1 → TS2</th><th class="num">gain</th><th>achieved / expected</th>
        <th>event time (UTC)</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<footer>Figures from all workers, folded from the output topics; updates arrive by
server-sent events. Updates received: <span id="update-count">0</span>.</footer>
<script>
"use strict";
(function () {
  var updates = 0;
  function el(id) { return document.getElementById(id); }
  function text(value) { return value === null || value === undefined ? "\u2013" : String(value); }
  function fmt(value, digits) {
    return value === null || value === undefined ? "\u2013" : Number(value).toFixed(digits);
  }
  function count(value) {
    return value === null || value === undefined ? "\u2013" : Math.round(value).toLocaleString("en");
  }
  function when(ms) {
    return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 16) : "\u2013";
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "\u2013";
    var s = Math.abs(seconds);
    if (s < 120) return seconds.toFixed(1) + " s";
    if (s < 7200) return (seconds / 60).toFixed(1) + " min";
    if (s < 172800) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }
  function cell(row, value, cls) {
    var td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function fill(tableId, rows, columns, emptyText, rowClass) {
    var body = el(tableId).tBodies[0];
    var fresh = document.createElement("tbody");
    rows.forEach(function (item) {
      var tr = document.createElement("tr");
      if (rowClass) tr.className = rowClass(item);
      columns(item).forEach(function (c) { cell(tr, c[0], c[1]); });
      fresh.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = cell(tr, emptyText, "empty");
      td.colSpan = el(tableId).tHead.rows[0].cells.length;
      fresh.appendChild(tr);
    }
    body.parentNode.replaceChild(fresh, body);
  }
  function effectText(e) {
    if (!e) return "\u2013";
    if (e.ineffective) return "INEFFECTIVE (gain " + fmt(e.gain, 2) + ")";
    return "achieved " + text(e.achieved_grade || "no grade") + ", expected " +
      text(e.expected_grade) + (e.reached ? " ✓" : "");
  }
  function render(s) {
    var t = s.throughput;
    el("readings-rate").textContent = t.readings_per_s === null ? "\u2013" : fmt(t.readings_per_s, 1);
    el("messages-rate").textContent = t.messages_per_s === null ? "\u2013" : fmt(t.messages_per_s, 1);
    el("readings-total").textContent = count(t.readings_total);
    el("worker-count").textContent = String(s.workers.length);
    el("customer-count").textContent = count(s.customers);
    el("ineffective-count").textContent = String(s.ineffective_running);
    el("ineffective-count").className = s.ineffective_running ? "value bad" : "value";
    el("served-by").textContent = "served by " + s.served_by;
    fill("lag-table", Object.keys(s.lag_seconds), function (topic) {
      return [[topic], [duration(s.lag_seconds[topic]), "num"]];
    }, "no lag reported yet");
    fill("tier-table", Object.keys(s.tiers), function (type) {
      var c = s.tiers[type];
      var total = c["1"] + c["2"] + c["3"] + c.none;
      return [[type], [count(c["1"]), "num"], [count(c["2"]), "num"], [count(c["3"]), "num"],
              [count(c.none), "num"], [count(total), "num"]];
    }, "no customers yet");
    fill("change-table", s.tier_changes, function (c) {
      return [[c.customer_id], [c.customer_type],
              [(c.old_tier === null ? "none" : c.old_tier) + " → " +
               (c.new_tier === null ? "none" : c.new_tier)], [when(c.at_ms)]];
    }, "no tier changes yet");
    fill("package-table", s.packages, function (p) {
      var e = p.effect;
      return [[p.package_id], [fmt(p.ts, 2), "num"], [text(p.heat), "heat-" + p.heat],
              [p.level === null ? "none" : String(p.level)],
              [p.campaign_id ? p.campaign_id + (p.campaign_running ? " (running)" : " (ended)") : "\u2013"],
              [effectText(e), e && e.ineffective ? "bad" : (e && e.reached ? "ok" : "")]];
    }, "no package events yet", function (p) {
      return p.campaign_running && p.effect && p.effect.ineffective ? "bad" : "";
    });
    fill("effect-table", s.campaign_effects, function (e) {
      return [[e.campaign_id], [text(e.level)], [e.final ? "final" : "running"],
              [fmt(e.duration_days, 1), "num"], [fmt(e.ts1, 2) + " → " + fmt(e.ts2, 2), "num"],
              [fmt(e.gain, 2), "num"],
              [e.ineffective ? "INEFFECTIVE" : text(e.achieved_grade) + " / " + text(e.expected_grade)],
              [when(e.at_ms)]];
    }, "no campaign effects yet", function (e) { return e.ineffective ? "bad" : ""; });
    document.body.setAttribute("data-version", String(s.version));
  }
  function live(on, message) {
    el("live-dot").className = on ? "dot live" : "dot";
    el("status").textContent = message;
  }
  fetch("/api/overview").then(function (r) { return r.json(); }).then(render)
    .catch(function () { live(false, "overview unavailable"); });
  if (!window.EventSource) { live(false, "no live updates in this browser"); return; }
  // "/?updates=N" stops after N updates: a snapshot for headless tools such
  // as chromium --dump-dom, which wait until the network is idle.
  var limit = Number(new URLSearchParams(location.search).get("updates")) || 0;
  var source = new EventSource("/events");
  source.addEventListener("snapshot", function (message) {
    render(JSON.parse(message.data));
    updates += 1;
    document.body.setAttribute("data-sse-updates", String(updates));
    el("update-count").textContent = String(updates);
    live(true, "live · " + new Date().toLocaleTimeString("en-GB"));
    if (limit && updates >= limit) {
      source.close();
      live(false, "stopped after " + updates + " updates");
    }
  });
  source.onerror = function () { live(false, "reconnecting…"); };
})();
</script>
</body>
</html>
"""
PAGE_BYTES = PAGE_HTML.encode()
