"""Throughput of one worker: readings/s and messages/s.

Not a test: it prints figures as JSON. Run from the repository root:

    python bench/throughput.py --readings 1000000 --customers 100000 \
        [--broker embedded|kafka] [--guarantee at_least_once|exactly_once]

``--broker kafka`` runs on Apache Kafka from ``scripts/kafka-local`` (java and
mvn needed) with faust's defaults, where the embedded broker's one record per
batch does not apply.

Pushes the readings once as single-reading messages and once as meter-day
blocks (48 half-hourly values per message) through a fresh worker each time,
and reports the time until the worker's readings counter reaches the total,
the worker's peak RSS (VmHWM), and p50/p99 latency from producer timestamp to
state update, interpolated from the worker's latency histogram as Prometheus'
histogram_quantile does (so as fine as its buckets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.request
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from models.events import IntervalReading
from streams.broker import BrokerProcess, EmbeddedBroker, free_port
from streams.commands import spawn_worker, stop_process
from streams.replay import encode_messages
from streams.replay import produce as produce_messages

HALF_HOUR = 1_800_000
BASE = 1_704_067_200_000


def readings(total: int, customers: int) -> list[IntervalReading]:
    per_customer = max(total // customers, 1)
    return [
        IntervalReading(
            f"b{c}",
            f"b{c}",
            BASE + i * HALF_HOUR,
            BASE + (i + 1) * HALF_HOUR,
            0.25,
            "residential",
        )
        for c in range(customers)
        for i in range(per_customer)
    ]


def scrape(port: int) -> list[str]:
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode()).splitlines()
    except OSError:
        return []


def booked(port: int) -> float:
    for line in scrape(port):
        if line.startswith("tariffstream_readings_total "):
            return float(line.split()[1])
    return 0.0


def latency_quantile(lines: list[str], q: float) -> float | None:
    """histogram_quantile over the worker's latency buckets."""
    buckets: list[tuple[float, float]] = []
    for line in lines:
        if line.startswith("tariffstream_processing_latency_seconds_bucket"):
            text = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(text), float(line.split()[-1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return None


def produce(
    bootstrap: str, messages: list[tuple[str, bytes, bytes]], embedded: bool
) -> None:
    topic = messages[0][0]
    encoded = [(key, value, 1) for _, key, value in messages]
    asyncio.run(
        produce_messages(bootstrap, topic, encoded, progress=None, embedded=embedded)
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(
    broker: BrokerProcess,
    data: list[IntervalReading],
    block_size: int,
    guarantee: str = "at_least_once",
) -> dict[str, Any]:
    embedded = isinstance(broker, EmbeddedBroker)
    prefix = f"bench{block_size}."
    home = Path(mkdtemp(prefix="tariffstream-bench-"))
    port = free_port()
    env = {
        "TARIFFSTREAM_STREAMS__TOPIC_PREFIX": prefix,
        "TARIFFSTREAM_STREAMS__STORE": "memory://",
        # One broker node: the changelogs faust creates can have one replica.
        "TARIFFSTREAM_STREAMS__REPLICATION_FACTOR": "1",
        "TARIFFSTREAM_STREAMS__PROCESSING_GUARANTEE": guarantee,
    }
    worker = spawn_worker(
        broker.url,
        port,
        home / "data",
        env=env,
        log=home / "worker.log",
        embedded=embedded,
    )
    try:
        messages = list(encode_messages(data, block_size))
        while booked(port) == 0 and worker.poll() is None:
            first = [(prefix + "meter-readings", *messages[0][:2])]
            produce(broker.bootstrap, first, embedded)
            time.sleep(2)
        started = time.monotonic()
        produce(
            broker.bootstrap,
            [(prefix + "meter-readings", k, v) for k, v, _ in messages[1:]],
            embedded,
        )
        while booked(port) < len(data) and worker.poll() is None:
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        lines = scrape(port)
        p50, p99 = latency_quantile(lines, 0.5), latency_quantile(lines, 0.99)
        return {
            "processing_guarantee": guarantee,
            "block_size": block_size,
            "messages": len(messages),
            "readings": len(data),
            "seconds": round(elapsed, 2),
            "readings_per_s": round(len(data) / elapsed),
            "messages_per_s": round(len(messages) / elapsed),
            "latency_p50_s": None if p50 is None else round(p50, 3),
            "latency_p99_s": None if p99 is None else round(p99, 3),
            "worker_peak_rss_mb": round(peak_rss_mb(worker.pid), 1),
        }
    finally:
        stop_process(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--block-sizes", default="1,48", help="values per message, one run each"
    )
    parser.add_argument("--broker", choices=["embedded", "kafka"], default="embedded")
    parser.add_argument(
        "--guarantee",
        choices=["at_least_once", "exactly_once"],
        default="at_least_once",
        help="processing guarantee; exactly_once needs --broker kafka",
    )
    args = parser.parse_args()
    if args.guarantee == "exactly_once" and args.broker != "kafka":
        parser.error("--guarantee exactly_once needs --broker kafka")
    data = readings(args.readings, args.customers)
    broker: BrokerProcess
    if args.broker == "kafka":
        from streams.kafka_local import LocalKafka

        broker = LocalKafka()
    else:
        broker = EmbeddedBroker()
    with broker:
        sizes = [int(size) for size in args.block_sizes.split(",")]
        results = [run(broker, data, size, args.guarantee) for size in sizes]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
