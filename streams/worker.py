"""Building and running a tariffstream worker process."""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry, generate_latest

from agents import register_all
from agents._io import Context
from config import Settings
from serving.api import register_api
from serving.readmodel import ReadModel
from streams.control_room import register_control_room
from streams.metrics import Metrics
from streams.topology import Topology, build_topology

__all__ = ["build_worker_app", "run_worker"]

logger = logging.getLogger(__name__)
# prometheus_client's CONTENT_TYPE_LATEST carries a charset, which aiohttp refuses
# in content_type; the text format is UTF-8 by definition.
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


def build_worker_app(
    settings: Settings, web_port: int | None = None, data_dir: Path | None = None
) -> tuple[Topology, Metrics]:
    """The app with every agent registered and ``/metrics`` on its web server."""
    embedded = settings.streams.broker_flavour == "embedded"
    topology = build_topology(
        settings,
        embedded=embedded,
        web_port=settings.streams.web_port if web_port is None else web_port,
        data_dir=Path(settings.streams.data_dir if data_dir is None else data_dir),
    )
    metrics = Metrics(CollectorRegistry())
    read_model = None
    if settings.serving.redis_url:
        read_model = ReadModel(settings, metrics.registry)
        topology.app.timer(settings.serving.flush_seconds)(read_model.flush)
    register_all(Context(topology, metrics, read_model))

    # Outputs too, so consumers of a fresh cluster find every topic at once.
    topology.app.declare_first = list(topology.topics.values())
    register_api(topology, settings, read_model)

    @topology.app.page("/metrics")
    async def prometheus(
        web: faust.web.View, request: faust.web.Request
    ) -> faust.web.Response:
        return web.bytes(
            generate_latest(metrics.registry), content_type=PROMETHEUS_TEXT
        )

    view = register_control_room(
        topology.app,
        settings,
        metrics,
        settings.streams.web_port if web_port is None else web_port,
    )

    async def cluster_gauges() -> None:
        recovery: Any = getattr(topology.app.tables, "recovery", None)
        done = recovery is not None and recovery.completed.is_set()
        metrics.tables_recovered.set(1 if done else 0)
        snapshot = view.snapshot(time.time())
        for ctype, counts in snapshot["tiers"].items():
            for tier, count in counts.items():
                metrics.customers.labels(customer_type=ctype, tier=tier).set(count)
        heat = Counter(row.get("heat") or "unknown" for row in snapshot["packages"])
        for level in ("cold", "medium", "hot"):
            metrics.packages.labels(heat=level).set(heat.get(level, 0))
        running = sum(1 for row in snapshot["packages"] if row.get("campaign_running"))
        metrics.campaigns_running.set(running)

    topology.app.timer(5.0)(cluster_gauges)
    return topology, metrics


def discard_local_tables(settings: Settings, tabledir: Path) -> bool:
    """Under exactly-once, start RocksDB tables empty: they are rebuilt from the
    committed changelog.

    RocksDB keeps every table write at once, including those of a transaction
    that a crash then aborted, and faust 0.15.3 never records which changelog
    offset a transactional store holds (it files the offset under the
    changelog's partition and looks it up under the input's). A store kept
    across a restart could hold writes the changelog does not; Kafka Streams
    wipes its stores after an unclean stop under exactly-once for the same
    reason. The cost is a full recovery at every start (README, Limitations).
    """
    if settings.streams.processing_guarantee != "exactly_once":
        return False
    if not settings.streams.store.startswith("rocksdb:"):
        return False
    if not tabledir.exists():
        return False
    logger.info("exactly-once: discarding local tables dir=%s", tabledir)
    shutil.rmtree(tabledir)
    return True


def run_worker(
    settings: Settings,
    web_port: int | None = None,
    data_dir: Path | None = None,
    loglevel: str = "warning",
) -> None:
    """Run a worker in the foreground until SIGTERM or Ctrl-C."""
    topology, _ = build_worker_app(settings, web_port, data_dir)
    discard_local_tables(settings, Path(topology.app.conf.tabledir))
    port = settings.streams.web_port if web_port is None else web_port
    print(
        f"tariffstream worker: broker {settings.streams.broker} "
        f"({settings.streams.broker_flavour}); control room http://127.0.0.1:{port}/ "
        "metrics /metrics, health /healthz /readyz",
        flush=True,
    )
    logger.info(
        "worker starting broker=%s flavour=%s partitions=%s",
        settings.streams.broker,
        settings.streams.broker_flavour,
        settings.streams.partitions,
    )
    worker = faust.Worker(topology.app, loglevel=loglevel, quiet=True)
    # faust's progress spinner sets the root logger to DEBUG: measured 15% slower.
    worker.spinner = None
    worker.execute_from_commandline()
