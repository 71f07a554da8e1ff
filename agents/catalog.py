"""The catalog: validated by a partitioned agent, read by every worker in full.

Every worker needs the whole catalog to recommend, whichever customers it owns.
Faust's GlobalTable did not replicate across two workers on the embedded broker
(each saw only its own partitions' keys), so each worker instead keeps the
catalog topic in memory with a consumer of its own, outside the consumer group.
The partitioned agent sends bad entries to the dead-letter topic once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents._io import Context
from models.decode import decode_catalog_entry
from models.events import Rejection
from rules.recommend import apply_catalog_entry
from streams.topology import topic_name

__all__ = ["CatalogCache", "register"]

logger = logging.getLogger(__name__)


class CatalogCache:
    """The whole catalog topic folded into a dict, kept current in the background."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.entries: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions: set[int] = set()
            while not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(self.topic) or set()
                if not partitions:
                    await asyncio.sleep(1.0)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            async for record in consumer:
                entry = decode_catalog_entry(record.value or b"")
                if not isinstance(entry, Rejection):
                    apply_catalog_entry(self.entries, entry)
        finally:
            await consumer.stop()


def register(ctx: Context) -> CatalogCache:
    topology = ctx.topology
    bootstrap = ctx.settings.streams.broker.split("://", 1)[-1]
    cache = CatalogCache(bootstrap, topic_name(ctx.settings, "catalog"))

    async def follow_catalog() -> None:
        await cache.run()

    topology.app.task(follow_catalog)

    @topology.app.agent(topology.topics["catalog"], name="catalog")
    async def catalog(stream: Any) -> None:
        async for event in stream.events():
            async with ctx.handling(event):
                message = event.message
                ctx.metrics.messages.labels(topic="catalog").inc()
                raw = message.value if isinstance(message.value, bytes) else b""
                entry = decode_catalog_entry(raw)
                if isinstance(entry, Rejection):
                    await ctx.dead_letter(message, entry)

    return cache
