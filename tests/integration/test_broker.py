"""The embedded broker takes a produced record and hands it to a consumer."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def _roundtrip(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1)]
        )
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batch = await asyncio.wait_for(consumer.getmany(timeout_ms=10_000), 15)
    finally:
        await consumer.stop()
    return [(m.key, m.value) for msgs in batch.values() for m in msgs]


def test_broker_roundtrip(broker: EmbeddedBroker) -> None:
    assert broker.running
    assert broker.url == f"kafka://{broker.bootstrap}"
    assert broker.bootstrap.startswith("127.0.0.1:")
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    records = asyncio.run(_roundtrip(broker.bootstrap, topic))
    assert records == [(b"k1", b"hello")]
