"""Throughput of one worker on the embedded broker: readings/s and messages/s.

Not a test: it prints figures as JSON. Run from the repository root:

    PYTHONPATH=. python bench/throughput.py --readings 1000000 --customers 100000

Pushes the readings once as single-reading messages and once as meter-day
blocks (48 half-hourly values per message) through a fresh worker each time,
and reports the time until the worker's readings counter reaches the total,
and the worker's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from models.events import IntervalReading
from streams.broker import EmbeddedBroker, free_port
from streams.commands import spawn_worker, stop_process
from streams.replay import encode_messages
from tests.integration.kafka_io import produce

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


def booked(port: int) -> float:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=5
        ) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("tariffstream_readings_total "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(
    broker: EmbeddedBroker, data: list[IntervalReading], block_size: int
) -> dict[str, Any]:
    prefix = f"bench{block_size}."
    home = Path(mkdtemp(prefix="tariffstream-bench-"))
    port = free_port()
    env = {
        "TARIFFSTREAM_STREAMS__TOPIC_PREFIX": prefix,
        "TARIFFSTREAM_STREAMS__STORE": "memory://",
    }
    worker = spawn_worker(
        broker.url, port, home / "data", env=env, log=home / "worker.log"
    )
    try:
        messages = list(encode_messages(data, block_size))
        while booked(port) == 0 and worker.poll() is None:
            produce(broker.bootstrap, [(prefix + "meter-readings", *messages[0][:2])])
            time.sleep(2)
        started = time.monotonic()
        produce(
            broker.bootstrap,
            [(prefix + "meter-readings", k, v) for k, v, _ in messages[1:]],
        )
        while booked(port) < len(data) and worker.poll() is None:
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        return {
            "block_size": block_size,
            "messages": len(messages),
            "readings": len(data),
            "seconds": round(elapsed, 2),
            "readings_per_s": round(len(data) / elapsed),
            "messages_per_s": round(len(messages) / elapsed),
            "worker_peak_rss_mb": round(peak_rss_mb(worker.pid), 1),
        }
    finally:
        stop_process(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    data = readings(args.readings, args.customers)
    with EmbeddedBroker() as broker:
        results = [run(broker, data, 1), run(broker, data, 48)]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
