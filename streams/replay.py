"""Publishing readings to the meter-readings topic, as head-end systems do.

Consecutive interval readings of one meter are packed into interval blocks
(``block_size`` values, 48 = a meter-day of half-hours by default); a block
expands into readings with the same identities as if sent one by one.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaProducer

from models.events import IntervalReading, RegisterReading

__all__ = ["EMBEDDED_BATCH_BYTES", "encode_messages", "produce"]

# Smaller than any record: aiokafka then puts each record in a batch of its own.
EMBEDDED_BATCH_BYTES = 64

Reading = IntervalReading | RegisterReading


def _reading_body(reading: Reading) -> dict[str, Any]:
    if isinstance(reading, RegisterReading):
        body: dict[str, Any] = {
            "customer_id": reading.customer_id,
            "meter_id": reading.meter_id,
            "at": reading.at_ms,
            "register_kwh": reading.register_kwh,
        }
        if reading.register_max is not None:
            body["register_max"] = reading.register_max
    else:
        body = {
            "customer_id": reading.customer_id,
            "meter_id": reading.meter_id,
            "start": reading.start_ms,
            "end": reading.end_ms,
            "kwh": reading.kwh,
        }
    if reading.customer_type is not None:
        body["customer_type"] = reading.customer_type
    return body


def _block_body(run: list[IntervalReading]) -> dict[str, Any]:
    first = run[0]
    body: dict[str, Any] = {
        "customer_id": first.customer_id,
        "meter_id": first.meter_id,
        "start": first.start_ms,
        "interval_minutes": (first.end_ms - first.start_ms) / 60_000,
        "values": [r.kwh for r in run],
    }
    if first.customer_type is not None:
        body["customer_type"] = first.customer_type
    return body


def encode_messages(
    readings: Iterable[Reading], block_size: int
) -> Iterator[tuple[bytes, bytes, int]]:
    """(key, value, readings in it) per message; runs of one meter become blocks."""
    run: list[IntervalReading] = []

    def flush() -> Iterator[tuple[bytes, bytes, int]]:
        if not run:
            return
        body = _block_body(run) if len(run) > 1 else _reading_body(run[0])
        yield run[0].customer_id.encode(), orjson.dumps(body), len(run)
        run.clear()

    for reading in readings:
        if isinstance(reading, RegisterReading) or block_size <= 1:
            yield from flush()
            yield reading.customer_id.encode(), orjson.dumps(_reading_body(reading)), 1
            continue
        if run:
            last = run[-1]
            contiguous = (
                reading.customer_id == last.customer_id
                and reading.meter_id == last.meter_id
                and reading.customer_type == last.customer_type
                and reading.start_ms == last.end_ms
                and reading.end_ms - reading.start_ms == last.end_ms - last.start_ms
            )
            if not contiguous or len(run) >= block_size:
                yield from flush()
        run.append(reading)
    yield from flush()


async def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes, bytes, int]],
    rate: float | None = None,
    progress: TextIO | None = sys.stderr,
    embedded: bool = False,
) -> int:
    """Send messages keyed by customer; ``rate`` caps readings per second.

    On the embedded broker every record goes in a batch of its own: it
    misreports offsets inside multi-record batches, and a consumer resuming in
    the middle of one after a restart then crawls.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=0 if embedded else 20,
        acks="all",
        max_batch_size=EMBEDDED_BATCH_BYTES if embedded else 16384,
    )
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    sent = 0
    started = time.monotonic()
    last_report = 0.0
    try:
        for key, value, count in messages:
            await producer.send(topic, value=value, key=key)
            sent += count
            if rate is not None:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            now = time.monotonic()
            if progress is not None and now - last_report > 0.5:
                last_report = now
                _report(progress, sent, now - started)
        await producer.flush()
    finally:
        await producer.stop()
    if progress is not None:
        _report(progress, sent, time.monotonic() - started)
        progress.write("\n")
    return sent


def _report(out: TextIO, sent: int, elapsed: float) -> None:
    speed = sent / elapsed if elapsed > 0 else 0.0
    out.write(f"\rreadings sent {sent:>10,}  {speed:>9,.0f}/s")
    out.flush()
