"""``tariffstream demo``: the embedded broker, a worker and a year of demo events.

Event time is paced against the wall clock only here, in the feed, so that a
year passes in about a minute; the rules see event time alone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.broker import EmbeddedBroker
from streams.commands import spawn_worker, stop_process
from streams.demo_feed import DAY_MS, demo_events
from streams.replay import EMBEDDED_BATCH_BYTES

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)
PREFIX = "tariffstream."


async def _feed(
    bootstrap: str, customers: int, seconds_per_day: float, stop: asyncio.Event
) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=EMBEDDED_BATCH_BYTES
    )
    await producer.start()
    sent = 0
    try:
        started = time.monotonic()
        first_ms: int | None = None
        for event in demo_events(customers=customers):
            if stop.is_set():
                break
            first_ms = event.at_ms if first_ms is None else first_ms
            due = (event.at_ms - first_ms) / DAY_MS * seconds_per_day
            ahead = due - (time.monotonic() - started)
            if ahead > 0.05:
                await asyncio.sleep(ahead)
            await producer.send(PREFIX + event.topic, key=event.key, value=event.value)
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def run_demo(web_port: int, customers: int, seconds_per_day: float) -> int:
    home = Path(tempfile.mkdtemp(prefix="tariffstream-demo-"))
    with EmbeddedBroker(log_path=home / "broker.log") as broker:
        print(f"embedded broker on {broker.bootstrap} (memory only)")
        worker = spawn_worker(
            broker.url, web_port, home / "data", log=home / "worker.log"
        )
        base = f"http://127.0.0.1:{web_port}"
        print(f"control room: {base}/   metrics: {base}/metrics")
        print(f"worker log: {home / 'worker.log'}")
        year = seconds_per_day * 365
        print(
            f"feeding {customers} customers, a year of event time in about {year:.0f} s"
        )
        try:
            asyncio.run(_run(broker.bootstrap, customers, seconds_per_day))
            print("demo feed done; the worker keeps running until Ctrl-C")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        except KeyboardInterrupt:
            pass
        finally:
            print("stopping the worker and the broker")
            stop_process(worker)
            print(f"logs and worker tables kept in {home}; remove it when done")
    return 0


async def _run(bootstrap: str, customers: int, seconds_per_day: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sent = await _feed(bootstrap, customers, seconds_per_day, stop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    print(f"sent {sent:,} events")
    if stop.is_set():
        raise KeyboardInterrupt
