"""The Apache Kafka lane: a real broker from Maven jars, transactions included.

Runs only with ``TARIFFSTREAM_TEST_BROKER=kafka`` and ``java`` and ``mvn`` on
PATH; the first run fetches the broker's jars into ``.cache/kafka/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.kafka_local import LocalKafka

_MISSING = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("TARIFFSTREAM_TEST_BROKER") != "kafka",
        reason="Apache Kafka lane: set TARIFFSTREAM_TEST_BROKER=kafka to run it",
    ),
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"Apache Kafka lane needs {' and '.join(_MISSING)} on PATH",
    ),
]


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """One Apache Kafka broker for this module; its log in a temp dir."""
    home = tmp_path_factory.mktemp("kafka")
    with LocalKafka(log_path=home / "kafka.log", work_dir=home / "work") as started:
        yield started


async def _consume(
    bootstrap: str, topic: str, count: int, *, read_committed: bool = False
) -> list[tuple[bytes | None, bytes | None]]:
    """Read *count* records of *topic* from the start, in a consumer group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    await consumer.start()
    seen: list[tuple[bytes | None, bytes | None]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(seen) < count and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += [(r.key, r.value) for rs in batch.values() for r in rs]
        await consumer.commit()
    finally:
        await consumer.stop()
    return seen


async def _roundtrip(bootstrap: str, topic: str) -> list[tuple[bytes | None, ...]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"hello", key=b"k1")
        partitions = producer.client.cluster.partitions_for_topic(topic) or set()
    finally:
        await producer.stop()
    assert meta.offset == 0
    assert len(partitions) == 4  # auto-created with num.partitions=4
    return list(await _consume(bootstrap, topic, 1))


async def _transactions(bootstrap: str, topic: str) -> list[tuple[bytes | None, ...]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"tx-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        # An aborted transaction first: a read_committed consumer must skip it.
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=b"k")
        await producer.abort_transaction()
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"committed", key=b"k")
        await producer.commit_transaction()
    finally:
        await producer.stop()
    return list(await _consume(bootstrap, topic, 1, read_committed=True))


def test_local_kafka_surface(kafka: LocalKafka) -> None:
    assert kafka.running
    assert kafka.bootstrap == f"127.0.0.1:{kafka.port}"
    assert kafka.url == f"kafka://{kafka.bootstrap}"
    assert isinstance(kafka.work_dir, Path)
    config = (kafka.work_dir / "server.properties").read_text()
    assert "process.roles=broker,controller" in config
    assert "0.0.0.0" not in config


def test_local_kafka_roundtrip(kafka: LocalKafka) -> None:
    topic = f"kl-roundtrip-{uuid.uuid4().hex[:8]}"
    records = asyncio.run(_roundtrip(kafka.bootstrap, topic))
    assert records == [(b"k1", b"hello")]


def test_local_kafka_commits_a_transaction(kafka: LocalKafka) -> None:
    topic = f"kl-tx-{uuid.uuid4().hex[:8]}"
    records = asyncio.run(_transactions(kafka.bootstrap, topic))
    assert records == [(b"k", b"committed")]
