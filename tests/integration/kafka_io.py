"""Test-side Kafka clients: produce, collect output topics, read a changelog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.replay import EMBEDDED_BATCH_BYTES
from tests.schema_check import OUTPUT_TOPICS, validate_output

# One record per batch on the embedded broker, as streams.replay does there.
BATCH_BYTES = EMBEDDED_BATCH_BYTES


def produce(
    bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes]]
) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=BATCH_BYTES
        )
        await producer.start()
        try:
            for topic, key, value in messages:
                await producer.send(topic, value=value, key=key)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())


def collect(
    bootstrap: str,
    topics: Sequence[str],
    done: Callable[[dict[str, list[dict[str, Any]]]], bool],
    timeout: float = 120.0,
    committed_only: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Read topics from the start until ``done(seen)`` holds or time runs out.

    ``committed_only`` reads as a downstream consumer of exactly-once outputs
    does: records of aborted transactions are not seen.
    """

    async def run() -> dict[str, list[dict[str, Any]]]:
        seen: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            isolation_level="read_committed" if committed_only else "read_uncommitted",
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    events = [orjson.loads(r.value) for r in records]
                    short = tp.topic.split(".", 1)[-1]
                    if short in OUTPUT_TOPICS:
                        # Every output event a test sees must keep its contract.
                        for event in events:
                            validate_output(short, event)
                    seen[tp.topic].extend(events)
                if done(seen):
                    break
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(run())


def read_table(bootstrap: str, changelog: str) -> dict[bytes, Any]:
    """The last value per key of a table's changelog topic (deletes removed)."""

    async def run() -> dict[bytes, Any]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(changelog)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(changelog) or set()
            if not partitions:
                return {}  # the worker has not written the table yet
            tps = [TopicPartition(changelog, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            table: dict[bytes, Any] = {}
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for r in records:
                        if r.value is None:
                            table.pop(r.key, None)
                        else:
                            table[r.key] = orjson.loads(r.value)
            return table
        finally:
            await consumer.stop()

    return asyncio.run(run())


def read_customers(bootstrap: str, changelog: str) -> dict[bytes, Any]:
    """Customer states by customer id, from the customer table's changelog (which
    also holds the ledger of readings under other keys)."""
    table = read_table(bootstrap, changelog)
    return {key[2:]: value for key, value in table.items() if key.startswith(b"c|")}


def unconsumed(bootstrap: str, group: str, topic: str) -> int:
    """Messages of *topic* past the offsets *group* has committed."""

    async def run() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
            (described,) = await admin.describe_topics([topic])
        finally:
            await admin.close()
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
        return sum(max(ends[tp] - done.get(tp, 0), 0) for tp in tps)

    return asyncio.run(run())
