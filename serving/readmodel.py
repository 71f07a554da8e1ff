"""The Redis read model: the latest view of every customer, package and campaign.

Key schema (``<p>`` is the topic prefix without its dot, ``tariffstream``):

- ``<p>:customer:<id>``: JSON customer view (``serving.views.customer_view``)
- ``<p>:package:<id>``: JSON package view; ``<p>:packages``: set of package ids
- ``<p>:campaign:<id>``: JSON campaign view; ``<p>:campaigns``: sorted set of
  campaign ids by start time
- ``<p>:alerts``: sorted set of JSON alerts for management by event time, capped
  at ``serving.alerts_kept``
- ``<p>:stream:tier-changes``, ``<p>:stream:recommendations``: capped Redis
  Streams mirroring those topics when ``serving.mirror_streams`` is on

Writes are whole values (SET, SADD, ZADD), so writing one twice changes nothing.
They are collected per key and sent in one pipeline every ``flush_seconds``; if
Redis is down the latest value per key is kept and sent when it returns, while
the stream processing goes on. ``tariffstream_read_model_lag_seconds`` tells how
far behind the read model is.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisError

from config import Settings

__all__ = ["ReadModel", "key_prefix"]

logger = logging.getLogger(__name__)


def key_prefix(settings: Settings) -> str:
    return settings.streams.topic_prefix.rstrip(".:-_") or "tariffstream"


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "tariffstream_read_model_pending",
            "Read-model writes not yet in Redis",
            registry=registry,
        )
        self.lag = Gauge(
            "tariffstream_read_model_lag_seconds",
            "Age of the oldest read-model write not yet in Redis (0 when caught up)",
            registry=registry,
        )
        self.failures = Counter(
            "tariffstream_read_model_failures_total",
            "Failed read-model flushes",
            registry=registry,
        )


class ReadModel:
    """Batched, idempotent writes of views to Redis that survive Redis outages."""

    def __init__(
        self, settings: Settings, registry: CollectorRegistry, client: Any = None
    ) -> None:
        self.settings = settings
        self.prefix = key_prefix(settings)
        self.redis: Any = client or aioredis.from_url(
            settings.serving.redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        self.metrics = _Metrics(registry)
        self._values: dict[str, bytes] = {}
        self._members: dict[str, dict[str, float]] = {}
        self._streams: list[tuple[str, dict[Any, Any]]] = []
        self._oldest: float | None = None
        self._down = False

    def _mark(self) -> None:
        if self._oldest is None:
            self._oldest = time.monotonic()
        self.metrics.pending.set(len(self._values) + len(self._streams))

    def put_customer(self, view: dict[str, Any]) -> None:
        self._values[f"{self.prefix}:customer:{view['customer_id']}"] = orjson.dumps(
            view
        )
        self._mark()

    def put_package(self, view: dict[str, Any]) -> None:
        package_id = view["package_id"]
        self._values[f"{self.prefix}:package:{package_id}"] = orjson.dumps(view)
        self._members.setdefault(f"{self.prefix}:packages", {})[package_id] = 0.0
        self._mark()

    def put_campaign(self, view: dict[str, Any]) -> None:
        campaign_id = view["campaign_id"]
        self._values[f"{self.prefix}:campaign:{campaign_id}"] = orjson.dumps(view)
        self._members.setdefault(f"{self.prefix}:campaigns", {})[campaign_id] = float(
            view["started_ms"]
        )
        self._mark()

    def add_alert(self, alert: dict[str, Any]) -> None:
        member = orjson.dumps(alert, option=orjson.OPT_SORT_KEYS).decode()
        self._members.setdefault(f"{self.prefix}:alerts", {})[member] = float(
            alert["at_ms"]
        )
        self._mark()

    def mirror(self, stream: str, event: dict[str, Any]) -> None:
        if self.settings.serving.mirror_streams:
            self._streams.append(
                (f"{self.prefix}:stream:{stream}", {"event": orjson.dumps(event)})
            )
            self._mark()

    async def flush(self) -> bool:
        """Send what is pending in one pipeline; keep it all if Redis is down."""
        if self._oldest is None:
            self.metrics.lag.set(0)
            return True
        # Take what is pending now; writes arriving during the round trip wait
        # for the next flush.
        values, members, streams = self._values, self._members, self._streams
        oldest = self._oldest
        self._values, self._members, self._streams, self._oldest = {}, {}, [], None
        pipe = self.redis.pipeline(transaction=False)
        for key, value in values.items():
            pipe.set(key, value)
        for key, scored in members.items():
            if key.endswith(":packages"):
                pipe.sadd(key, *scored)
            else:
                pipe.zadd(key, scored)
        alerts = f"{self.prefix}:alerts"
        if alerts in members:
            pipe.zremrangebyrank(alerts, 0, -self.settings.serving.alerts_kept - 1)
        for stream, fields in streams:
            pipe.xadd(
                stream,
                fields,
                maxlen=self.settings.serving.stream_maxlen,
                approximate=True,
            )
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self._restore(values, members, streams, oldest)
            self.metrics.failures.inc()
            self.metrics.lag.set(time.monotonic() - oldest)
            if not self._down:
                logger.warning(
                    "read model: redis unreachable, keeping %d writes: %s",
                    len(values),
                    type(exc).__name__,
                )
            self._down = True
            return False
        if self._down:
            logger.warning(
                "read model: redis is back, caught up %d writes", len(values)
            )
        self._down = False
        self.metrics.pending.set(len(self._values) + len(self._streams))
        self.metrics.lag.set(
            0 if self._oldest is None else time.monotonic() - self._oldest
        )
        return True

    def _restore(
        self,
        values: dict[str, bytes],
        members: dict[str, dict[str, float]],
        streams: list[tuple[str, dict[Any, Any]]],
        oldest: float,
    ) -> None:
        """Put back what a failed flush took; writes made since then are newer."""
        self._values = {**values, **self._values}
        for key, scored in members.items():
            self._members[key] = {**scored, **self._members.get(key, {})}
        self._streams = streams + self._streams
        self._oldest = oldest

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.redis.aclose()
